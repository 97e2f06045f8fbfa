"""bluegreen: one program, four stacks. `blue` and `green` are arms; `live` is the edge; `data` is
the database the arms share, deployed first."""

import pulumi

import platforms
from bluegreen import config
from components import Arm, ArmArgs, Data, DataArgs, Edge, EdgeArgs, arm_from_stack, data_from_stack

try:
    stack = platforms.from_engine()
    stack.preflight()
except config.ConfigError as err:
    raise pulumi.RunError(f"invalid config for stack {pulumi.get_stack()}:\n{err}") from None

if stack.settings.freeze_override:
    # The policy pack lets this update through a change freeze; the reason must be on record.
    pulumi.log.warn(f"change-freeze override in effect: {stack.settings.freeze_override}")

if isinstance(stack, platforms.DataStack):
    data = Data("data", DataArgs(settings=stack.settings, platform=stack.platform))
    pulumi.export("dsn", data.dsn)
    pulumi.export("schema", data.schema)
elif isinstance(stack, platforms.ArmStack):
    s = stack.settings
    arm = Arm(s.color, ArmArgs(settings=s, platform=stack.platform, data=data_from_stack(s)))
    pulumi.export("color", arm.color)
    pulumi.export("version", arm.version)
    pulumi.export("endpoint", arm.endpoint)
    pulumi.export("nodes", arm.nodes)
    for key, value in arm.exports.items():  # what this platform's edge reads besides the above
        pulumi.export(key, value)
else:
    arms = {color: arm_from_stack(stack.settings, color) for color in config.COLORS}
    edge = Edge("live", EdgeArgs(settings=stack.settings, arms=arms, platform=stack.platform))
    pulumi.export("activeColor", edge.active_color)
    pulumi.export("url", edge.url)
    pulumi.export("weights", edge.weights)
    pulumi.export("versions", edge.versions)
    pulumi.export("maintenance", edge.maintenance)
    for key, value in edge.exports.items():  # e.g. the ALB's name and zone for DNS aliases
        pulumi.export(key, value)
