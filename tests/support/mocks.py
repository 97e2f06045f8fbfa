"""The Pulumi mocks the component tests share: record every resource, answer StackReferences
with given arm outputs, echo inputs as state. Platforms add what their cloud computes by
overriding `state` and `call`. `set_mocks` is process-global: install per test, never at import."""

from __future__ import annotations

import pulumi


class StackMocks(pulumi.runtime.Mocks):
    def __init__(self, stacks: dict[str, dict]) -> None:
        self.stacks = stacks
        self.created: dict[str, pulumi.runtime.MockResourceArgs] = {}

    def state(self, args: pulumi.runtime.MockResourceArgs) -> dict:
        """What the provider returns on create; inputs echoed by default."""
        return dict(args.inputs)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.created[args.name] = args
        if args.typ == "pulumi:pulumi:StackReference":
            return args.name, {
                "name": args.inputs["name"],
                "outputs": self.stacks.get(args.inputs["name"], {}),
            }
        return f"{args.name}-id", self.state(args)

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


def install(mocks: StackMocks) -> StackMocks:
    pulumi.runtime.set_mocks(
        mocks, project="bluegreen", stack="test", preview=False, organization="organization"
    )
    return mocks


def stack(name: str, **values: str):
    """A stack's config as `pulumi up` reads it: `values` (keys without `bluegreen:`) over
    Pulumi.yaml's defaults, the shared keys and the platform's, validated. Run dirs resolve
    against `/repo`."""
    import platforms
    from bluegreen import config
    from tests.support.sandbox import ROOT

    return platforms.load(config.with_defaults(values, ROOT), name, "/repo")


def build_arm(loaded):
    """The Arm component of an arm stack's config, under the installed mocks."""
    from components import Arm, ArmArgs

    return Arm(loaded.settings.color, ArmArgs(loaded.settings, loaded.platform))


def build_edge(loaded):
    """The Edge component of the live stack's config, reading both arms' stacks."""
    from bluegreen.config import COLORS
    from components import Edge, EdgeArgs, arm_from_stack

    arms = {c: arm_from_stack(loaded.settings, c) for c in COLORS}
    return Edge("live", EdgeArgs(settings=loaded.settings, arms=arms, platform=loaded.platform))


def deploy(build) -> None:
    """Run a program under the mocks until every resource it declares has been registered."""

    @pulumi.runtime.test
    def program():
        return build().urn

    program()


def where(args: pulumi.runtime.MockResourceArgs) -> str:
    """The resource's type and name, for failure messages."""
    return f"{args.typ}::{args.name}"


def maintenance(**fields):
    """Maintenance mode on, with Pulumi.yaml's defaults for whatever `fields` leaves out."""
    import dataclasses

    on = stack("live", role="edge", activeColor="blue", maintenance="true").settings.maintenance
    return dataclasses.replace(on, **fields)
