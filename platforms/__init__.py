"""Platform adapters: how an arm and the edge are realised on local, nixos, aws or kubernetes.

Every adapter has the same three methods, so the components never branch on the platform:

- `preflight(settings)`: refuse config the platform cannot honour, before anything changes.
- `arm(name, parent, settings) -> ArmEndpoint`: declare one arm's compute as children of `parent`.
- `edge(name, parent, settings, arms, weights) -> EdgeEndpoint`: declare the traffic switch.
"""

from __future__ import annotations

from typing import Protocol

import pulumi

from bluegreen.config import Settings
from platforms import lifeline
from platforms.base import ArmEndpoint, ArmView, EdgeEndpoint

lifeline.bind_to_engine()  # in a dynamic provider process: exit when the engine goes away


class Platform(Protocol):
    def preflight(self, settings: Settings) -> None:
        """Check the platform's config against the world before anything is declared; raise
        `ConfigError` naming the key, the value and what is allowed."""
        ...

    def arm(self, name: str, parent: pulumi.Resource, settings: Settings) -> ArmEndpoint: ...

    def edge(
        self,
        name: str,
        parent: pulumi.Resource,
        settings: Settings,
        arms: dict[str, ArmView],
        weights: dict[str, int],
    ) -> EdgeEndpoint: ...


def get(name: str) -> Platform:
    """The adapter for `bluegreen:platform`."""
    if name == "local":
        from platforms.local import LocalPlatform

        return LocalPlatform()
    if name == "nixos":
        from platforms.nixos import NixosPlatform

        return NixosPlatform()
    if name == "aws":
        from platforms.aws import AwsPlatform

        return AwsPlatform()
    if name == "kubernetes":
        from platforms.kubernetes import KubernetesPlatform

        return KubernetesPlatform()
    raise NotImplementedError(
        f'bluegreen:platform "{name}" is not one of local, nixos, aws, kubernetes'
    )
