"""Platform adapters: how an arm and the edge are realised on local, nixos, aws or kubernetes.

The registry is `REGISTRY` below: a platform's name and the module of its adapter. Adding a
platform is one module and one entry here. Each module defines `ARM` and `EDGE`, the classes of
platforms/base.py that read the platform's own keys for that role (`from_config`) and declare its
resources, and `DATA`, the data stack's database there (an arm reads it with `arm(data=...)`).
Modules are imported only when their platform is chosen, so a local stack never loads a cloud SDK.

The core (bluegreen/config.py) cannot import this package; it reads the keys every platform
shares. `load` composes the two: one `Reader` goes through the core's keys and the platform's, so
a `ConfigError` names every bad key of either at once, before anything is declared.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from bluegreen import config
from bluegreen.config import ArmSettings, DataSettings, EdgeSettings
from bluegreen.reader import Getter, Reader
from platforms import lifeline
from platforms.base import ArmPlatform, DataPlatform, EdgePlatform

lifeline.bind_to_engine()  # in a dynamic provider process: exit when the engine goes away

REGISTRY: dict[str, str] = {
    "local": "platforms.local",
    "nixos": "platforms.nixos",
    "aws": "platforms.aws",
    "kubernetes": "platforms.kubernetes",
}


@dataclass(frozen=True)
class ArmStack:
    """An arm stack's validated config: the shared settings and the platform's own."""

    settings: ArmSettings
    platform: ArmPlatform

    def preflight(self) -> None:
        self.platform.preflight(self.settings)


@dataclass(frozen=True)
class EdgeStack:
    """The edge stack's validated config: the shared settings and the platform's own."""

    settings: EdgeSettings
    platform: EdgePlatform

    def preflight(self) -> None:
        self.platform.preflight(self.settings)


@dataclass(frozen=True)
class DataStack:
    """The data stack's validated config: the shared settings and the platform's own."""

    settings: DataSettings
    platform: DataPlatform

    def preflight(self) -> None:
        self.platform.preflight(self.settings)


Loaded = ArmStack | EdgeStack | DataStack


def adapter(name: str):
    """The module of a registered platform."""
    return importlib.import_module(REGISTRY[name])


def load(get: Getter, stack: str, project_dir: str) -> Loaded:
    """Read and validate a stack's whole config; `ConfigError` names every problem at once."""
    read = Reader(get, stack)
    name = read.declared("platform")
    if name not in REGISTRY:
        read.problem("platform", name, "one of " + ", ".join(REGISTRY))
    settings = config.read_settings(read, project_dir)
    if name not in REGISTRY:
        read.stop()
    module = adapter(name)
    if isinstance(settings, DataSettings):
        loaded: Loaded = DataStack(settings, module.DATA.from_config(read))
    elif isinstance(settings, ArmSettings):
        loaded = ArmStack(settings, module.ARM.from_config(read))
    else:
        loaded = EdgeStack(settings, module.EDGE.from_config(read))
        read.problems.extend(loaded.platform.refusals(settings))
    read.check()
    return loaded


def from_engine() -> Loaded:
    """This stack's config as the engine passes it, Pulumi.yaml's defaults included."""
    import pulumi

    return load(pulumi.Config(config.NAMESPACE).get, pulumi.get_stack(), os.getcwd())


def from_stack_config(values: Mapping[str, str], stack: str, project_dir: str):
    """As `config.from_stack_config`, with the platform's keys read too (tests, scripts)."""
    return load(config.with_defaults(values, project_dir), stack, project_dir)
