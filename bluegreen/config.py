"""Every config key the program reads, validated up front into one frozen `Settings`.

Nothing is created or changed when config is invalid: `load()` runs before any resource is
declared, and a `ConfigError` lists every bad key with the value it got and what is allowed.
The keys and their defaults are declared once, in `Pulumi.yaml`; the defaults here mirror them so
that unit tests and scripts that read a stack file directly agree with the engine.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from bluegreen import platform_config as pc

Color = Literal["blue", "green"]
COLORS: tuple[Color, ...] = ("blue", "green")
ROLES = ("arm", "edge")
PLATFORMS = ("local", "nixos", "aws", "kubernetes")
NAMESPACE = "bluegreen"


def other(color: str) -> Color:
    """The other arm: the idle colour of an active one, the rollback target of a live one."""
    return "green" if color == "blue" else "blue"


# Values that end up in nginx text, Nix text and HTTP headers: a strict alphabet keeps `;`, `}`,
# quotes and newlines out, so no value can inject configuration.
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_PATH = re.compile(r"^/[A-Za-z0-9._~/-]{0,127}$")
_STACK = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$")


class ConfigError(ValueError):
    """Config keys are invalid; the message names each key, its value and what is allowed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Maintenance:
    """Read-only mode at the edge: writes are refused with a retry hint, reads keep being served."""

    enabled: bool = False
    status: int = 503
    """503 or 423 for refused writes."""
    retry_after_s: int = 30
    """The Retry-After the refused writes carry, in seconds."""
    banner: str = ""
    """An optional message every response carries in X-Bluegreen-Banner."""


@dataclass(frozen=True)
class Hold:
    """The stop rules of the hold after a flip: a breach rolls back."""

    max_error_rate: float = 0.01
    p95_ratio: float = 1.15
    p95_allowance_ms: float = 2.0
    min_requests: int = 20


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one stack."""

    stack: str
    """The Pulumi stack this program runs for."""
    role: Literal["arm", "edge"]
    """`arm` declares one colour's deployment; `edge` declares the traffic switch."""
    platform: str
    """The adapter that realises the components: local, nixos, aws or kubernetes."""
    app_name: str
    """Short name of the application, used in resource and upstream names."""
    health_path: str
    """Readiness path every arm serves; the edge and the policy pack probe it."""
    bind_address: str
    """Address local processes and the local edge listen on (loopback only)."""
    run_dir: str
    """Absolute directory for local runtime files: pid files, logs, nginx config."""
    color: Color | None = None
    """Arm only: which arm this stack is."""
    version: str | None = None
    """Arm only: the application version this arm serves."""
    port: int | None = None
    """Arm only (local): the port the arm's service listens on."""
    active_color: Color | None = None
    """Edge only: the single pointer, the colour that takes traffic."""
    edge_port: int | None = None
    """Edge only (local): the port nginx listens on."""
    arm_stacks: Mapping[str, str] = field(default_factory=dict)
    """Edge only: the stack name of each arm, read through StackReference."""
    flip_timeout_s: float = 10.0
    """Edge only: how long the edge waits for the new colour to answer through nginx."""
    live_stack: str = "live"
    """Arm only: the edge stack whose pointer says whether this arm is live."""
    replicas: int = 1
    """Arm only: how many instances serve this arm (local runs one process)."""
    freeze_override: str | None = None
    """A reason that lets this update through a change freeze; it shows in the policy output."""
    simulate: Mapping[str, str] = field(default_factory=dict)
    """Arm only (local): faults the reference service injects on purpose (tests, demos)."""
    nixos: pc.Nixos | None = None
    """Set when bluegreen:platform is nixos."""
    aws: pc.Aws | None = None
    """Set when bluegreen:platform is aws."""
    kubernetes: pc.Kubernetes | None = None
    """Set when bluegreen:platform is kubernetes."""
    dns: pc.Dns = field(default_factory=pc.Dns)
    """Edge only: the DNS records the edge declares (provider none: no records)."""
    canary_weight: int | None = None
    """Edge only: the active colour's share during a canary step (None: all traffic)."""
    sticky: bool = False
    """Edge only: during a canary step, keep each client on one arm."""
    maintenance: Maintenance = field(default_factory=lambda: Maintenance())
    """Edge only: read-only mode."""
    hold: Hold = field(default_factory=Hold)
    """Edge only: the stop rules of the hold after a flip."""

    @property
    def app_args(self) -> list[str]:
        flags = {"serve-version": "version"}
        return [f"--{flags.get(k, k)}={v}" for k, v in sorted(self.simulate.items())]


Getter = Callable[[str], "str | None"]


def _problem(key: str, value: object, allowed: str) -> str:
    return f'{NAMESPACE}:{key} must be {allowed}, got "{value}"'


def _port(get: Getter, key: str, problems: list[str], default: int | None = None) -> int | None:
    raw = get(key)
    if raw is None:
        return default
    try:
        value = int(str(raw), 10)
    except ValueError:
        problems.append(_problem(key, raw, "an integer port from 1024 to 65535"))
        return None
    if not 1024 <= value <= 65535:
        problems.append(_problem(key, raw, "an integer port from 1024 to 65535"))
        return None
    return value


def _number(
    get: Getter, key: str, default: float, low: float, high: float, problems: list[str]
) -> float:
    raw = get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
        if low <= value <= high:
            return value
    except ValueError:
        pass
    problems.append(_problem(key, raw, f"a number from {low:g} to {high:g}"))
    return default


def _bool(get: Getter, key: str, problems: list[str]) -> bool:
    raw = (get(key) or "false").lower()
    if raw not in ("true", "false"):
        problems.append(_problem(key, raw, "true or false"))
    return raw == "true"


def _color(get: Getter, key: str, problems: list[str]) -> Color | None:
    raw = get(key)
    if raw is None:
        return None
    if raw not in COLORS:
        problems.append(_problem(key, raw, '"blue" or "green"'))
        return None
    return raw  # type: ignore[return-value]


_SIMULATE = {
    "ready-status": re.compile(r"^[1-5][0-9][0-9]$"),
    "delay-ms": re.compile(r"^[0-9]{1,5}(\.[0-9]+)?$"),
    "error-rate": re.compile(r"^(0(\.[0-9]+)?|1(\.0+)?)$"),
    # Report a version other than the pinned one, as an arm restarted by hand on another build.
    "serve-version": _VERSION,
}


def _simulate(raw: str | None, problems: list[str]) -> dict[str, str]:
    """Parse `ready-status=500,delay-ms=40,error-rate=0.02` (any subset, or empty)."""
    result: dict[str, str] = {}
    for item in filter(None, (raw or "").split(",")):
        name, _, value = item.strip().partition("=")
        pattern = _SIMULATE.get(name)
        if pattern is None or not pattern.match(value):
            problems.append(
                _problem(
                    "simulate",
                    raw,
                    "comma-separated ready-status=<HTTP status>, delay-ms=<ms>, "
                    "error-rate=<0..1>, serve-version=<version>",
                )
            )
            return {}
        result[name] = value
    return result


def from_values(get: Getter, stack: str, project_dir: str) -> Settings:
    """Validate raw config values (strings, as the engine passes them) into Settings."""
    problems: list[str] = []

    role = get("role")
    if role is None:
        problems.append(
            f'{NAMESPACE}:role is not set for stack "{stack}": it must be "arm" (Pulumi.blue.yaml, '
            'Pulumi.green.yaml) or "edge" (Pulumi.live.yaml)'
        )
    elif role not in ROLES:
        problems.append(_problem("role", role, '"arm" or "edge"'))

    platform = get("platform") or "local"
    if platform not in PLATFORMS:
        problems.append(_problem("platform", platform, "one of " + ", ".join(PLATFORMS)))

    app_name = get("appName") or "shop"
    if not _APP_NAME.match(app_name):
        problems.append(
            _problem(
                "appName",
                app_name,
                "lowercase letters, digits and '-', starting with a letter",
            )
        )

    health_path = get("healthPath") or "/healthz/ready"
    if not _PATH.match(health_path):
        problems.append(
            _problem(
                "healthPath",
                health_path,
                "an absolute URL path of letters, digits, ._~/-",
            )
        )

    bind_address = get("bindAddress") or "127.0.0.1"
    try:
        if platform == "local" and not ipaddress.ip_address(bind_address).is_loopback:
            problems.append(
                _problem(
                    "bindAddress",
                    bind_address,
                    "a loopback address on the local platform",
                )
            )
    except ValueError:
        problems.append(_problem("bindAddress", bind_address, "an IP address such as 127.0.0.1"))

    run_dir = get("runDir") or os.path.join(".bluegreen", stack)
    if "\n" in run_dir or ";" in run_dir or "{" in run_dir or "}" in run_dir:
        problems.append(_problem("runDir", run_dir, "a directory path without ; { } or newlines"))
    run_dir = os.path.abspath(os.path.join(project_dir, run_dir))

    arm_keys = ("color", "version", "port", "simulate")
    # Keys with a default in Pulumi.yaml reach every stack, so only these can be told apart.
    edge_keys = ("activeColor",)

    settings: dict[str, object] = {}
    override = get("freezeOverride")
    if override is not None:
        if len(override.strip()) < 8 or "\n" in override:
            problems.append(
                _problem("freezeOverride", override, "a one-line reason of at least 8 characters")
            )
        settings["freeze_override"] = override.strip()
    if role in ROLES:
        if platform == "nixos":
            settings["nixos"] = pc.nixos(get, role, problems)
        elif platform == "aws":
            settings["aws"] = pc.aws(get, role, problems)
        elif platform == "kubernetes":
            settings["kubernetes"] = pc.kubernetes(get, role, problems)
    if role == "arm":
        settings["replicas"] = pc._int(get, "replicas", 1, 0, 1000, problems)
        settings["color"] = _color(get, "color", problems)
        if get("color") is None:
            problems.append(
                f'{NAMESPACE}:color is not set for arm stack "{stack}": '
                'it must be "blue" or "green"'
            )
        version = get("version")
        if version is None:
            problems.append(
                f'{NAMESPACE}:version is not set for arm stack "{stack}": '
                "set the version this arm serves, e.g. v2"
            )
        elif not _VERSION.match(version):
            problems.append(
                _problem(
                    "version",
                    version,
                    "1-64 characters of letters, digits and ._+- (e.g. v1.4.2)",
                )
            )
        settings["version"] = version
        settings["port"] = _port(get, "port", problems)
        settings["simulate"] = _simulate(get("simulate"), problems)
        live_stack = get("liveStack") or "live"
        if not _STACK.match(live_stack):
            problems.append(_problem("liveStack", live_stack, "a stack name such as live"))
        settings["live_stack"] = live_stack
        if platform == "local" and get("port") is None and get("color") is not None:
            problems.append(
                f'{NAMESPACE}:port is not set for arm stack "{stack}": '
                "the local platform needs a port"
            )
        for key in edge_keys:
            if get(key) is not None:
                problems.append(
                    f"{NAMESPACE}:{key} belongs only in the edge stack (Pulumi.live.yaml), "
                    f'but arm stack "{stack}" sets it to "{get(key)}": remove it here'
                )
    elif role == "edge":
        settings["active_color"] = _color(get, "activeColor", problems)
        if get("activeColor") is None:
            problems.append(
                f'{NAMESPACE}:activeColor is not set for edge stack "{stack}": '
                'it must be "blue" or "green"'
            )
        settings["edge_port"] = _port(get, "edgePort", problems, default=18080)
        settings["dns"] = pc.dns(get, platform, problems)
        canary = pc._int(get, "canaryWeight", 0, 0, 100, problems)
        settings["canary_weight"] = canary if 0 < canary < 100 else None
        settings["sticky"] = _bool(get, "stickyCanary", problems)
        status = pc._int(get, "maintenanceStatus", 503, 100, 599, problems)
        if status not in (503, 423):
            problems.append(_problem("maintenanceStatus", status, "503 or 423"))
        banner = get("maintenanceBanner") or ""
        if not re.match(r"^[A-Za-z0-9 .,:;!?()'/_-]{0,200}$", banner) or ";" in banner:
            problems.append(
                _problem(
                    "maintenanceBanner", banner, "up to 200 letters, digits, spaces and .,:!?()'/_-"
                )
            )
        settings["maintenance"] = Maintenance(
            enabled=_bool(get, "maintenance", problems),
            status=status,
            retry_after_s=pc._int(get, "maintenanceRetryAfter", 30, 1, 86400, problems),
            banner=banner,
        )
        settings["hold"] = Hold(
            max_error_rate=_number(get, "holdMaxErrorRate", 0.01, 0.0, 0.5, problems),
            p95_ratio=_number(get, "holdP95Ratio", 1.15, 1.0, 10.0, problems),
            p95_allowance_ms=_number(get, "holdP95AllowanceMs", 2.0, 0.0, 1000.0, problems),
            min_requests=pc._int(get, "holdMinRequests", 20, 1, 1_000_000, problems),
        )
        stacks = {}
        for color in COLORS:
            key = f"{color}Stack"
            name = get(key) or color
            if not _STACK.match(name):
                problems.append(
                    _problem(key, name, "a stack name such as green or org/project/green")
                )
            stacks[color] = name
        settings["arm_stacks"] = stacks
        raw_timeout = get("flipTimeoutSeconds")
        if raw_timeout is not None:
            try:
                timeout = float(raw_timeout)
                if not 1 <= timeout <= 300:
                    raise ValueError
                settings["flip_timeout_s"] = timeout
            except ValueError:
                problems.append(
                    _problem(
                        "flipTimeoutSeconds",
                        raw_timeout,
                        "a number of seconds from 1 to 300",
                    )
                )
        for key in arm_keys:
            if get(key) is not None:
                problems.append(
                    f"{NAMESPACE}:{key} belongs only in an arm stack "
                    "(Pulumi.blue.yaml, Pulumi.green.yaml), "
                    f'but edge stack "{stack}" sets it to "{get(key)}": remove it here'
                )

    if problems:
        raise ConfigError(problems)
    return Settings(
        stack=stack,
        role=role,  # type: ignore[arg-type]
        platform=platform,
        app_name=app_name,
        health_path=health_path,
        bind_address=bind_address,
        run_dir=run_dir,
        **settings,  # type: ignore[arg-type]
    )


def unset_defaults(get: Getter) -> Getter:
    """Pulumi.yaml gives role-specific keys the default "" (ports 0) meaning "not set"."""

    def wrapped(key: str) -> str | None:
        value = get(key)
        return None if value in ("", None) or (key == "port" and value == "0") else value

    return wrapped


def load() -> Settings:
    """Read this stack's config from the Pulumi engine."""
    import pulumi

    cfg = pulumi.Config(NAMESPACE)
    return from_values(unset_defaults(cfg.get), pulumi.get_stack(), os.getcwd())


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


def from_stack_config(values: Mapping[str, str], stack: str, project_dir: str) -> Settings:
    """Validate a stack's config read outside the engine (the operator's command, scripts).

    `values` maps keys without the `bluegreen:` namespace to their string values, as
    `pulumi config --json` or the Automation API's `get_all_config()` give them; what the stack
    does not set takes its default from Pulumi.yaml, as the engine would give it.
    """
    merged = {**project_defaults(project_dir), **values}
    return from_values(unset_defaults(merged.get), stack, project_dir)
