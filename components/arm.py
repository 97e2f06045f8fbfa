"""One arm: the same component declares blue and green, so the two can only differ by config."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from bluegreen.config import ArmSettings
from components.naming import qualified
from platforms.base import ArmPlatform


@dataclass(frozen=True)
class ArmArgs:
    settings: ArmSettings
    """This arm stack's validated config (colour, version, health path)."""
    platform: ArmPlatform
    """The adapter, with its own validated keys, that declares the arm's compute."""


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
        super().__init__("bluegreen:index:Arm", name, gate, opts)
        deployed = args.platform.arm(name, self, s)
        self.color = pulumi.Output.from_input(s.color)
        self.version = pulumi.Output.from_input(s.version)
        self.endpoint = deployed.endpoint
        self.nodes = deployed.nodes
        self.exports = deployed.exports
        self.register_outputs(
            {
                "color": self.color,
                "version": self.version,
                "endpoint": self.endpoint,
                "nodes": self.nodes,
                **self.exports,
            }
        )
