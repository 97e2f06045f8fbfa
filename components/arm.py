"""One arm: the same component declares blue and green, so the two can only differ by config."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from bluegreen.config import ArmSettings
from components.naming import qualified
from platforms.base import ArmPlatform, DataLink


@dataclass(frozen=True)
class ArmArgs:
    settings: ArmSettings
    """This arm stack's validated config (colour, version, health path)."""
    platform: ArmPlatform
    """The adapter, with its own validated keys, that declares the arm's compute."""
    data: DataLink | None = None
    """The data stack as this arm reads it (components/data.py `data_from_stack`); None for an
    arm without bluegreen:schemaRevision, which declares exactly what it did before there was a
    data stack."""


class Arm(pulumi.ComponentResource):
    """A deployment of one colour of the application, reachable on its own direct endpoint."""

    color: pulumi.Output[str]
    version: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    nodes: pulumi.Output[list[str]]

    def __init__(self, name: str, args: ArmArgs, opts: pulumi.ResourceOptions | None = None):
        s = args.settings
        # These inputs are what the policy pack judges an arm deploy by (it sees inputs only).
        # The colour that is live and the version this arm serves now it reads from the stacks'
        # last outputs itself (policy/bluegreen_policy/state.py): as inputs they would show as a
        # change on the first preview after every flip, and the live stack may not exist yet.
        gate = {
            "stack": qualified(s.stack),
            "liveStack": qualified(s.live_stack),
            "color": s.color,
            "version": s.version,
            "replicas": s.replicas,
            "freezeOverride": s.freeze_override,
        }
        data = args.data
        if data is not None:
            # The revision this release needs, and what the data stack has applied: the pack
            # refuses an arm whose revision is not applied yet, or whose shape an applied
            # contract removed (`floor`, set by `floorContract`).
            gate["schema"] = {
                "needs": data.needs,
                "applied": data.applied,
                "dataStack": data.stack,
                "floor": data.floor,
                "floorContract": data.floor_contract,
            }
        super().__init__("bluegreen:index:Arm", name, gate, opts)
        deployed = args.platform.arm(name, self, s, data=data)
        self.color = pulumi.Output.from_input(s.color)
        self.version = pulumi.Output.from_input(s.version)
        self.endpoint = deployed.endpoint
        self.nodes = deployed.nodes
        self.exports = dict(deployed.exports)
        if data is not None:
            self.exports["schemaRevision"] = pulumi.Output.from_input(data.needs)
        self.register_outputs(
            {
                "color": self.color,
                "version": self.version,
                "endpoint": self.endpoint,
                "nodes": self.nodes,
                **self.exports,
            }
        )
