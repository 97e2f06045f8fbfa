"""The core settings of a stack, by role: `ArmSettings` (blue, green), `EdgeSettings` (live) or
`DataSettings` (data).

Nothing is created or changed when config is invalid: the settings are read before any resource
is declared, and a `ConfigError` lists every bad key with the value it got and what is allowed.
A field that belongs to one role exists only on that role's settings, so it is never Optional
where it is used.

This module reads the keys every platform shares. Each platform adapter reads its own keys with
the same `Reader` (platforms/__init__.py composes the two); the tooling, which needs only these,
reads a stack file with `from_stack_config`. Defaults are written once, in Pulumi.yaml:
`project_defaults` reads them for code that runs outside the engine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal, cast

from bluegreen.config_parts.data_settings import (
    Data,
    SchemaNeed,
    read_data,
    read_edge_data,
    read_need,
    read_rollback_window,
)
from bluegreen.config_parts.dns_settings import Dns, read_dns
from bluegreen.config_parts.edge_sites import Sites, read_sites
from bluegreen.config_parts.hold_settings import HOLD_METRICS, Hold, read_hold
from bluegreen.config_parts.maintenance_settings import (
    Maintenance,
    Window,
    read_maintenance,
    utc_text,
)
from bluegreen.config_parts.queue_settings import QUEUE_DSN, SECRET, Queue
from bluegreen.config_parts.traffic_settings import (
    LIMIT_WHEN,
    Backpressure,
    Cache,
    Shadow,
    read_backpressure,
    read_cache,
    read_shadow,
)
from bluegreen.reader import (
    APP_NAME,
    NAMESPACE,
    STACK,
    URL_PATH,
    VERSION,
    ConfigError,
    Getter,
    Reader,
)

__all__ = [
    "COLORS",
    "HOLD_METRICS",
    "LIMIT_WHEN",
    "NAMESPACE",
    "QUEUE_DSN",
    "RUN_ROOT",
    "SECRET",
    "ArmSettings",
    "Backpressure",
    "Cache",
    "Color",
    "Common",
    "ConfigError",
    "Data",
    "DataSettings",
    "Dns",
    "EdgeSettings",
    "Hold",
    "Maintenance",
    "Queue",
    "SchemaNeed",
    "Shadow",
    "Sites",
    "Window",
    "from_stack_config",
    "other",
    "project_defaults",
    "qualified",
    "read_settings",
    "utc_text",
    "weights_for",
    "with_defaults",
]

Color = Literal["blue", "green"]
COLORS: tuple[Color, ...] = ("blue", "green")
RUN_ROOT = ".bluegreen"
"""Where each stack keeps its runtime files, `<RUN_ROOT>/<stack>`, unless bluegreen:runDir says."""


def other(color: str) -> Color:
    """The other arm: the idle colour of an active one, the rollback target of a live one."""
    return "green" if color == "blue" else "blue"


def weights_for(active: str, canary: int | None = None) -> dict[str, int]:
    """The weights the pointer implies: 100 for the active colour, or `canary` in a canary step."""
    idle = other(active)
    if canary is None or canary >= 100:
        return {active: 100, idle: 0}
    return {active: canary, idle: 100 - canary}


def qualified(stack: str, organization: str, project: str) -> str:
    """org/project/stack: a stack file may shorten a stack's name to its own; a name with a `/`
    is already whole."""
    return stack if "/" in stack else f"{organization}/{project}/{stack}"


@dataclass(frozen=True)
class Common:
    """What every stack has, whatever its role."""

    stack: str
    """The Pulumi stack this program runs for."""
    platform: str
    """The adapter that realises the components (platforms.REGISTRY)."""
    app_name: str
    """Short name of the application, used in resource and upstream names."""
    health_path: str
    """Readiness path every arm serves; the edge and the policy pack probe it."""
    run_dir: str
    """Absolute directory for runtime files: pid files, logs, nginx config, known_hosts."""
    freeze_override: str | None
    """A reason that lets this update through a change freeze; it shows in the policy output."""


@dataclass(frozen=True)
class ArmSettings(Common):
    """An arm stack: one colour of the application."""

    role: ClassVar[str] = "arm"
    color: Color
    version: str
    """The application version this arm serves."""
    live_stack: str
    """The edge stack whose pointer says whether this arm is live."""
    replicas: int
    """How many instances serve this arm (local runs one process, nixos one per node)."""
    schema: SchemaNeed | None = None
    """What this arm's release needs of the data stack (bluegreen:schemaRevision); None: it keeps
    no data and reads no data stack."""


@dataclass(frozen=True)
class EdgeSettings(Common):
    """The edge stack: the pointer and the traffic switch in front of both arms."""

    role: ClassVar[str] = "edge"
    active_color: Color
    """The single pointer, the colour that takes traffic."""
    arm_stacks: Mapping[str, str]
    """The stack name of each arm, read through StackReference."""
    flip_timeout_s: float
    """How long the edge waits for the new colour to answer through the switch."""
    canary_weight: int | None
    """The active colour's share during a canary step (None: all traffic)."""
    sticky: bool
    """During a canary step, keep each client on one arm."""
    maintenance: Maintenance
    hold: Hold
    dns: Dns | None
    """The DNS records the edge declares (None: bluegreen:dnsProvider none)."""
    evidence_file: str | None
    """Absolute path of a JSON-lines file each traffic change's evidence record is appended to,
    besides the stack's state (None: the state only)."""
    cache: Cache
    shadow: Shadow
    backpressure: Backpressure
    handover_s: int = 5
    """How long the writer lease stays with nobody after the pointer moves, so that the old
    colour's writers are gone before the new colour's start (`bluegreen writer`)."""
    sites: Sites = Sites()
    """The edges of bluegreen:edges and the waves of bluegreen:waves (none: the one edge)."""
    data_stack: str = "data"
    """The data stack whose applied revisions the gate checks a flip against, if it exists."""
    rollback_window_minutes: int = 30
    """After a flip, how long a rollback to the arm it left counts as possible (for a contract)."""

    @property
    def weights(self) -> dict[str, int]:
        """Each colour's share of traffic (0-100), as the pointer and the canary step imply."""
        return weights_for(self.active_color, self.canary_weight)


@dataclass(frozen=True)
class DataSettings(Common):
    """The data stack: the database the arms share, migrated to `data.schema_revision`."""

    role: ClassVar[str] = "data"
    data: Data


Settings = ArmSettings | EdgeSettings | DataSettings

# Keys only one role may set. They have no default in Pulumi.yaml, so a stack that sets one of
# the other role's is told so rather than silently ignored.
_ARM_ONLY = ("color", "version", "port", "simulate", "armRegions")
_EDGE_ONLY = ("activeColor", "rollbackWindowMinutes")
_COLOR = '"blue" or "green"'


def _color(read: Reader, key: str, why: str) -> Color:
    return cast(Color, read.choice(key, COLORS, _COLOR, read.required(key, why) or "blue"))


def _common(read: Reader, project_dir: str) -> Common:
    override = read.optional("freezeOverride")
    if override is not None and (len(override.strip()) < 8 or "\n" in override):
        read.problem("freezeOverride", override, "a one-line reason of at least 8 characters")
    run_dir = read.optional("runDir") or os.path.join(RUN_ROOT, read.stack)
    if re.search(r"[\n;{}]", run_dir):
        read.problem("runDir", run_dir, "a directory path without ; { } or newlines")
    return Common(
        stack=read.stack,
        platform=read.declared("platform"),
        app_name=read.matching("appName", APP_NAME),
        health_path=read.matching("healthPath", URL_PATH),
        run_dir=os.path.abspath(os.path.join(project_dir, run_dir)),
        freeze_override=override.strip() if override is not None else None,
    )


def _misplaced(read: Reader, keys: tuple[str, ...], role: str, belongs: str) -> None:
    for key in keys:
        value = read.optional(key)
        if value is not None:
            read.problems.append(
                f"{NAMESPACE}:{key} belongs only in {belongs}, but {role} stack "
                f'"{read.stack}" sets it to "{value}": remove it here'
            )


def _arm(read: Reader, common: Common) -> ArmSettings:
    where = f' for arm stack "{read.stack}"'
    version = read.required("version", f"{where}: set the version this arm serves, e.g. v2")
    _misplaced(read, _EDGE_ONLY, "arm", "the edge stack (Pulumi.live.yaml)")
    return ArmSettings(
        **vars(common),
        color=_color(read, "color", f'{where}: it must be "blue" or "green"'),
        version=read.matching("version", VERSION, version) if version else version,
        live_stack=read.matching("liveStack", STACK),
        replicas=read.integer("replicas", 0, 1000),
        schema=read_need(read),
    )


def _arm_stacks(read: Reader) -> dict[str, str]:
    stacks = {}
    for color in COLORS:
        key = f"{color}Stack"
        name = read.declared(key)
        if not STACK.fits(name):
            read.problem(key, name, "a stack name such as green or org/project/green")
        stacks[color] = name
    return stacks


def _edge(read: Reader, common: Common, project_dir: str) -> EdgeSettings:
    where = f' for edge stack "{read.stack}"'
    evidence_file = read.optional("evidenceFile")
    if evidence_file is not None and (not evidence_file.strip() or "\n" in evidence_file):
        read.problem("evidenceFile", evidence_file, "a file path, relative to the project")
    _misplaced(read, _ARM_ONLY, "edge", "an arm stack (Pulumi.blue.yaml, Pulumi.green.yaml)")
    canary = read.integer("canaryWeight", 0, 100)
    return EdgeSettings(
        **vars(common),
        active_color=_color(read, "activeColor", f'{where}: it must be "blue" or "green"'),
        arm_stacks=_arm_stacks(read),
        flip_timeout_s=read.number("flipTimeoutSeconds", 1, 300, unit="seconds"),
        canary_weight=canary if 0 < canary < 100 else None,
        sticky=read.flag("stickyCanary"),
        maintenance=read_maintenance(read),
        hold=read_hold(read),
        dns=read_dns(read),
        evidence_file=os.path.abspath(os.path.join(project_dir, evidence_file))
        if evidence_file
        else None,
        cache=read_cache(read),
        shadow=read_shadow(read),
        backpressure=read_backpressure(read),
        handover_s=read.integer("writerHandoverSeconds", 1, 600),
        sites=read_sites(read),
        data_stack=read_edge_data(read),
        rollback_window_minutes=read_rollback_window(read),
    )


def read_settings(read: Reader, project_dir: str) -> Settings:
    """The core settings of the stack `read` reads. Problems are left in `read` for the caller to
    `check()` together with the platform's; an unknown role stops here, since it decides which
    keys to read."""
    role = read.optional("role")
    if role is None:
        read.problems.append(
            f'{NAMESPACE}:role is not set for stack "{read.stack}": it must be "arm" (Pulumi.blue'
            '.yaml, Pulumi.green.yaml), "edge" (Pulumi.live.yaml) or "data" (Pulumi.data.yaml)'
        )
    elif role not in ("arm", "edge", "data"):
        read.problem("role", role, '"arm", "edge" or "data"')
    common = _common(read, project_dir)
    if role == "arm":
        return _arm(read, common)
    if role == "edge":
        return _edge(read, common, project_dir)
    if role == "data":
        for keys, belongs in ((_ARM_ONLY, "an arm stack"), (_EDGE_ONLY, "the edge stack")):
            _misplaced(read, keys, "data", belongs)
        return DataSettings(**vars(common), data=read_data(read))
    read.stop()


def project_defaults(project_dir: str) -> dict[str, str]:
    """The defaults Pulumi.yaml declares, as the engine passes them: strings, without namespace."""
    import yaml

    with open(os.path.join(project_dir, "Pulumi.yaml")) as f:
        declared = yaml.safe_load(f).get("config") or {}
    prefix = NAMESPACE + ":"
    return {
        key.removeprefix(prefix): str(spec["default"]).lower()
        if isinstance(spec.get("default"), bool)
        else str(spec["default"])
        for key, spec in declared.items()
        if key.startswith(prefix) and isinstance(spec, dict) and "default" in spec
    }


def with_defaults(values: Mapping[str, str], project_dir: str) -> Getter:
    """A stack's values over Pulumi.yaml's defaults, as the engine would pass them."""
    return {**project_defaults(project_dir), **values}.get


def from_stack_config(values: Mapping[str, str], stack: str, project_dir: str) -> Settings:
    """Validate a stack's config read outside the engine (the operator's command, scripts).

    `values` maps keys without the `bluegreen:` namespace to their string values, as
    `pulumi config --json` or the Automation API's `get_all_config()` give them; what the stack
    does not set takes its default from Pulumi.yaml, as the engine would give it. Only the keys
    every platform shares are read: the platform's own are the program's business
    (platforms.from_stack_config reads both).
    """
    read = Reader(with_defaults(values, project_dir), stack)
    settings = read_settings(read, project_dir)
    read.check()
    return settings
