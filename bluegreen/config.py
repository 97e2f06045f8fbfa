"""The core settings of a stack, by role: `ArmSettings` (blue, green) or `EdgeSettings` (live).

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Literal, cast

from bluegreen.reader import (
    APP_NAME,
    BANNER,
    HOST_NAME,
    NAMESPACE,
    STACK,
    URL_PATH,
    VERSION,
    Alphabet,
    ConfigError,
    Getter,
    Reader,
    is_host,
)

__all__ = [
    "COLORS",
    "ArmSettings",
    "Backpressure",
    "Cache",
    "Color",
    "ConfigError",
    "EdgeSettings",
    "Hold",
    "Maintenance",
    "Queue",
    "Shadow",
    "from_stack_config",
    "other",
    "project_defaults",
    "read_settings",
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


QUEUE_STORES = ("sqlite", "postgresql")
POSTGRES_URL = r"postgres(ql)?://[^\s]+$"
QUEUE_DSN = "maintenanceQueueDsn"
"""The secret key of the PostgreSQL intent store's DSN; platforms read it with get_secret."""
SECRET = "[secret]"
"""A value the stack's file keeps encrypted, read outside the engine without decrypting it (as
`pulumi config` shows it): set, but not for the operator's command to check."""


@dataclass(frozen=True)
class Queue:
    """Write intents kept during maintenance: a write to one of `paths` that carries an
    Idempotency-Key is stored durably and answered 202 with a receipt, then replayed to the active
    arm once writes are open again, in arrival order: sent at least once, applied once by the
    arm's Idempotency-Key dedupe."""

    paths: tuple[str, ...] = ()
    """Path prefixes whose keyed writes are queued (() : none, every write is refused)."""
    store: str = "sqlite"
    """"sqlite" on the edge host, or "postgresql" for edges on several hosts (the DSN is the
    secret bluegreen:maintenanceQueueDsn, read by the platform, never kept here)."""
    max_body_kb: int = 64
    soak_s: int = 5
    """How long writes must stay open before the queued intents are replayed."""
    rate: int = 5
    """Queued writes per second one client (address) may send; more are answered 429. The
    intake is diverted before the edge-wide limits apply, so this one always does."""
    burst: int = 10
    """Queued writes above `rate` one client may send at once."""
    connections: int = 4
    """Connections one client may have open to the intake at once; more are answered 429."""
    max_pending: int = 10_000
    """Most pending intents the store keeps (all edges sharing it); past it 503, never 202."""
    max_pending_mb: int = 256
    """Most MiB of pending intents (bodies and headers) the store keeps."""
    max_per_client: int = 2_500
    """Most pending intents one client (its credential, else its address) may have."""
    min_free_mb: int = 256
    """SQLite: MiB the disk under the store keeps free; a write that would leave less is 503."""
    retry_minutes: int = 10
    """How long a queued write is retried through transient failures before it is dead."""

    @property
    def enabled(self) -> bool:
        return bool(self.paths)


@dataclass(frozen=True)
class Window:
    """A planned maintenance window, announced on the edge's status page and by the webhook."""

    start: datetime | None
    end: datetime | None
    """While maintenance is on and the end is ahead, Retry-After counts down to it."""


def utc_text(moment: datetime | None) -> str | None:
    """The one spelling of a window's times: 2026-11-24T02:00:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


@dataclass(frozen=True)
class Maintenance:
    """Read-only mode at the edge: writes are refused with a retry hint, reads keep being served."""

    enabled: bool
    status: int
    """503 or 423 for refused writes."""
    retry_after_s: int
    """The Retry-After the refused writes carry, in seconds (unless a planned end is ahead)."""
    banner: str
    """A message every response carries in X-Bluegreen-Banner ("" for none)."""
    window: Window = field(default_factory=lambda: Window(None, None))
    queue: Queue = field(default_factory=Queue)


@dataclass(frozen=True)
class Cache:
    """The edge cache (nginx proxy_cache) of cacheable GET answers, keyed by the colour and the
    version that served them, so that a flip or a rollback never serves the other arm's content."""

    enabled: bool
    max_size_mb: int
    warm_paths: tuple[str, ...]
    """GET paths fetched into the new colour's namespace before traffic moves to it."""


@dataclass(frozen=True)
class Shadow:
    """Shadow traffic: a share of live requests mirrored to the idle arm, answers discarded."""

    percent: int
    """Share of live requests mirrored, 0-100 (0: off)."""
    writes: bool
    """Mirror writes too (POST, PUT, PATCH, DELETE); off by default, as they have effects."""


LIMIT_WHEN = ("always", "hold")
HOLD_METRICS = ("latency", "errors")
"""What the hold's judge compares per colour (the policy pack's judge.METRICS)."""


@dataclass(frozen=True)
class Backpressure:
    """An edge-wide request rate limit and connection cap, answered 429 (rate) or 503
    (connections) with Retry-After, always or only for a while after traffic moves."""

    rate: int
    """Requests per second the edge passes on (0: no rate limit)."""
    burst: int
    """Requests above the rate accepted at once (nginx limit_req burst, nodelay)."""
    connections: int
    """Concurrent connections the edge serves (0: no cap)."""
    retry_after_s: int
    when: str
    """"always", or "hold": for `hold_s` seconds after each change that moves traffic."""
    hold_s: int

    @property
    def enabled(self) -> bool:
        return self.rate > 0 or self.connections > 0


@dataclass(frozen=True)
class Hold:
    """The hold's judge after a flip (the policy pack's judge.py, fed live traffic): a metric that
    fails rolls back, and so does a hold still undecided at `max_s` (inconclusive)."""

    confidence: float
    latency_tolerance: float
    """A share of the compared colour's median latency."""
    latency_floor_ms: float
    error_tolerance: float
    """Error-rate increase allowed over the compared colour (0.01 is one point)."""
    min_requests: int
    max_s: int
    """How long a hold still undecided when its time is up may go on checking, in all."""
    critical: tuple[str, ...] = HOLD_METRICS
    dry_run: tuple[str, ...] = ()
    weights: tuple[tuple[str, float], ...] = (("latency", 50.0), ("errors", 50.0))
    pass_score: int = 95
    marginal_score: int = 75


@dataclass(frozen=True)
class Dns:
    """The DNS records the edge declares: <app>.<zone> (live), blue.<zone>, green.<zone>."""

    provider: Literal["route53", "rfc2136"]
    zone: str
    ttl: int
    switch: bool
    """DNS-based switch: the live name points at the active arm rather than at the edge."""
    zone_id: str
    """Route 53 hosted zone id ("" for rfc2136)."""
    server: str
    """RFC 2136: host:port of the primary that accepts updates."""
    tsig_key_name: str
    tsig_algorithm: str


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

    @property
    def weights(self) -> dict[str, int]:
        """Each colour's share of traffic (0-100), as the pointer and the canary step imply."""
        return weights_for(self.active_color, self.canary_weight)


Settings = ArmSettings | EdgeSettings

# Keys only one role may set. They have no default in Pulumi.yaml, so a stack that sets one of
# the other role's is told so rather than silently ignored.
_ARM_ONLY = ("color", "version", "port", "simulate")
_EDGE_ONLY = ("activeColor",)
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


_UTC = "a UTC time such as 2026-11-24T02:00:00Z"


def _moment(read: Reader, key: str) -> datetime | None:
    raw = read.declared(key).strip()
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None or moment.utcoffset().total_seconds() != 0:
        read.problem(key, raw, _UTC)
        return None
    return moment


def _window(read: Reader) -> Window:
    start, end = _moment(read, "maintenanceStart"), _moment(read, "maintenanceEnd")
    if start and end and end <= start:
        read.problem(
            "maintenanceEnd", utc_text(end), f"a time after maintenanceStart {utc_text(start)}"
        )
    return Window(start, end)


def _queue(read: Reader) -> Queue:
    paths = read.strings("maintenanceQueue")
    for path in paths:
        if not URL_PATH.fits(path):
            read.problem("maintenanceQueue", path, URL_PATH.allowed + " (a write path to queue)")
    store = read.choice("maintenanceQueueStore", QUEUE_STORES, '"sqlite" or "postgresql"')
    dsn = read.optional(QUEUE_DSN) or ""
    checkable = dsn != SECRET  # the engine checks the decrypted value on every update
    if paths and store == "postgresql" and checkable and not re.match(POSTGRES_URL, dsn):
        # The DSN holds a password: never shown, not even in an error.
        read.problems.append(
            f"{NAMESPACE}:{QUEUE_DSN} must be a postgresql:// URL when "
            f'{NAMESPACE}:maintenanceQueueStore is "postgresql"; it is '
            f"{'set to something else (not shown: it is a secret)' if dsn else 'not set'}. Set it "
            f"with: pulumi config set --secret --stack {read.stack} {NAMESPACE}:{QUEUE_DSN} "
            "postgresql://user:password@host:5432/db"
        )
    return Queue(
        paths=paths,
        store=store,
        max_body_kb=read.integer("maintenanceQueueMaxBodyKb", 1, 10240),
        soak_s=read.integer("maintenanceSoakSeconds", 0, 3600),
        rate=read.integer("maintenanceQueueRate", 1, 10000),
        burst=read.integer("maintenanceQueueBurst", 0, 100000),
        connections=read.integer("maintenanceQueueConnections", 1, 100000),
        **_queue_caps(read),
    )


def _queue_caps(read: Reader) -> dict[str, int]:
    """How much the queue keeps, and how long it retries: it answers 503 rather than grow."""
    caps = {
        "max_pending": read.integer("maintenanceQueueMaxPending", 1, 10_000_000),
        "max_pending_mb": read.integer("maintenanceQueueMaxPendingMb", 1, 1_000_000),
        "max_per_client": read.integer("maintenanceQueueMaxPerClient", 1, 10_000_000),
        "min_free_mb": read.integer("maintenanceQueueMinFreeMb", 0, 1_000_000),
        "retry_minutes": read.integer("maintenanceQueueRetryMinutes", 1, 10_080),
    }
    if caps["max_per_client"] > caps["max_pending"]:
        read.problem(
            "maintenanceQueueMaxPerClient",
            caps["max_per_client"],
            f"at most maintenanceQueueMaxPending ({caps['max_pending']})",
        )
    return caps


def _maintenance(read: Reader) -> Maintenance:
    status = read.integer("maintenanceStatus", 100, 599)
    if status not in (503, 423):
        read.problem("maintenanceStatus", status, "503 or 423")
    return Maintenance(
        enabled=read.flag("maintenance"),
        status=status,
        retry_after_s=read.integer("maintenanceRetryAfter", 1, 86400),
        banner=read.matching("maintenanceBanner", BANNER),
        window=_window(read),
        queue=_queue(read),
    )


def _cache(read: Reader) -> Cache:
    enabled = read.flag("cache")
    paths = read.strings("cacheWarmPaths")
    for path in paths:
        if not URL_PATH.fits(path.split("?", 1)[0]):
            read.problem("cacheWarmPaths", path, URL_PATH.allowed + " (a GET path to warm)")
    if paths and not enabled:
        read.problem("cacheWarmPaths", ",".join(paths), "unset while bluegreen:cache is false")
    return Cache(enabled, read.integer("cacheMaxSizeMb", 1, 1_000_000), paths)


def _shadow(read: Reader) -> Shadow:
    return Shadow(read.integer("shadow", 0, 100), read.flag("shadowWrites"))


def _backpressure(read: Reader) -> Backpressure:
    return Backpressure(
        rate=read.integer("rateLimit", 0, 1_000_000),
        burst=read.integer("rateLimitBurst", 0, 1_000_000),
        connections=read.integer("connectionLimit", 0, 1_000_000),
        retry_after_s=read.integer("limitRetryAfter", 1, 3600),
        when=read.choice("limitWhen", LIMIT_WHEN, '"always" or "hold"'),
        hold_s=read.integer("limitHoldSeconds", 1, 86400),
    )


def _metric_names(read: Reader, key: str) -> tuple[str, ...]:
    raw = read.declared(key)
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    if any(n not in HOLD_METRICS for n in names) or len(set(names)) != len(names):
        read.problem(key, raw, f"metric names separated by commas, of {', '.join(HOLD_METRICS)}")
        return ()
    return names


def _metric_weights(read: Reader) -> tuple[tuple[str, float], ...]:
    raw = read.declared("holdWeights")
    found: dict[str, float] = {}
    for part in raw.split(","):
        name, _, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if name.strip() not in HOLD_METRICS or name.strip() in found or not 0 < weight <= 1000:
            read.problem(
                "holdWeights",
                raw,
                'each metric once with a weight above 0, e.g. "latency=50,errors=50"',
            )
            return (("latency", 50.0), ("errors", 50.0))
        found[name.strip()] = weight
    return tuple(found.items())


REPLACED = {
    "holdMaxErrorRate": "holdErrorTolerance",
    "holdP95Ratio": "holdLatencyTolerance",
    "holdP95AllowanceMs": "holdLatencyFloorMs",
}
"""The p95 hold's keys, and the judge's that replaced them: a stack still setting one is told."""


def _hold(read: Reader) -> Hold:
    for old, new in REPLACED.items():
        value = read.optional(old)
        if value is not None:
            read.problem(old, value, f"unset: the hold's judge replaced it with bluegreen:{new}")
    dry = _metric_names(read, "holdDryRun")
    if set(dry) == set(HOLD_METRICS):
        read.problem(
            "holdDryRun",
            read.declared("holdDryRun"),
            "at most one of latency, errors: "
            "a hold where every metric is a dry run decides nothing",
        )
    pass_score = read.integer("holdPassScore", 1, 100)
    marginal = read.integer("holdMarginalScore", 0, 100)
    if marginal > pass_score:
        read.problem(
            "holdMarginalScore", marginal, f"at most bluegreen:holdPassScore ({pass_score})"
        )
    return Hold(
        confidence=read.number("holdConfidence", 0.8, 0.999),
        latency_tolerance=read.number("holdLatencyTolerance", 0.0, 10.0),
        latency_floor_ms=read.number("holdLatencyFloorMs", 0.0, 10000.0),
        error_tolerance=read.number("holdErrorTolerance", 0.0, 0.5),
        min_requests=read.integer("holdMinRequests", 1, 1_000_000),
        max_s=read.integer("holdMaxSeconds", 1, 86400),
        critical=_metric_names(read, "holdCritical"),
        dry_run=dry,
        weights=_metric_weights(read),
        pass_score=pass_score,
        marginal_score=marginal,
    )


_ZONE = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\.?")
_TSIG = ("hmac-sha256", "hmac-sha384", "hmac-sha512")
_DNS_NAME = Alphabet(HOST_NAME.pattern, "a DNS name")


def _dns(read: Reader) -> Dns | None:
    provider = read.choice(
        "dnsProvider", ("none", "route53", "rfc2136"), '"none", "route53" or "rfc2136"'
    )
    if provider == "none":
        return None
    zone = read.required("dnsZone", f": bluegreen:dnsProvider {provider} needs a zone")
    zone = zone.rstrip(".").lower()
    if zone and not _ZONE.fullmatch(zone + "."):
        read.problem("dnsZone", zone, "a DNS zone such as shop.example.com")
    zone_id = ""
    if provider == "route53":
        zone_id = read.required("dnsZoneId", ": Route 53 needs the hosted zone id")
    server = read.declared("dnsServer")
    host, _, port = server.rpartition(":")
    if not host or not is_host(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        read.problem("dnsServer", server, "host:port")
    return Dns(
        provider=cast(Literal["route53", "rfc2136"], provider),
        zone=zone,
        ttl=read.integer("dnsTtl", 1, 86400),
        switch=read.flag("dnsSwitch"),
        zone_id=zone_id,
        server=server,
        tsig_key_name=read.matching("tsigKeyName", _DNS_NAME),
        tsig_algorithm=read.choice(
            "tsigAlgorithm", _TSIG, "hmac-sha256, hmac-sha384 or hmac-sha512"
        ),
    )


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
        maintenance=_maintenance(read),
        hold=_hold(read),
        dns=_dns(read),
        evidence_file=os.path.abspath(os.path.join(project_dir, evidence_file))
        if evidence_file
        else None,
        cache=_cache(read),
        shadow=_shadow(read),
        backpressure=_backpressure(read),
        handover_s=read.integer("writerHandoverSeconds", 1, 600),
    )


def read_settings(read: Reader, project_dir: str) -> Settings:
    """The core settings of the stack `read` reads. Problems are left in `read` for the caller to
    `check()` together with the platform's; an unknown role stops here, since it decides which
    keys to read."""
    role = read.optional("role")
    if role is None:
        read.problems.append(
            f'{NAMESPACE}:role is not set for stack "{read.stack}": it must be "arm" '
            '(Pulumi.blue.yaml, Pulumi.green.yaml) or "edge" (Pulumi.live.yaml)'
        )
    elif role not in ("arm", "edge"):
        read.problem("role", role, '"arm" or "edge"')
    common = _common(read, project_dir)
    if role == "arm":
        return _arm(read, common)
    if role == "edge":
        return _edge(read, common, project_dir)
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
