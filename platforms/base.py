"""What every platform adapter returns, so components and the edge never depend on one platform."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

# Requests that maintenance (read-only) mode refuses at every edge; reads keep being served.
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class ArmEndpoint:
    """What an arm stack exports: the edge and the policy pack read these through StackReference."""

    endpoint: pulumi.Output[str]
    """URL that reaches this arm alone (smoke tests, people testing the idle arm)."""
    nodes: pulumi.Output[list[str]]
    """host:port of each node the edge sends traffic to."""
    exports: dict[str, pulumi.Output] = field(default_factory=dict)
    """Platform-specific outputs the platform's edge needs (e.g. targetGroupArn), exported."""


@dataclass(frozen=True)
class ArmView:
    """An arm as the edge sees it: values read from the arm stack's outputs."""

    color: str
    endpoint: pulumi.Input[str]
    version: pulumi.Input[str]
    nodes: pulumi.Input[list[str]]
    outputs: pulumi.Output[dict]
    """Every output of the arm stack, for platform-specific ones such as targetGroupArn."""


@dataclass(frozen=True)
class EdgeEndpoint:
    """What the edge stack exports."""

    url: pulumi.Output[str]
    """Where users' traffic enters. Known at plan time wherever the config fixes it: the DNS
    records point at it, and an unknown here shows in a flip's preview as a phantom change."""
    generation: pulumi.Output[str]
    """Fingerprint of the edge config that is serving."""
    exports: dict[str, pulumi.Output] = field(default_factory=dict)
    """Platform-specific outputs the edge stack exports (e.g. albDnsName for DNS aliases)."""
