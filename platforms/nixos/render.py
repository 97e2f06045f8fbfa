"""The Nix text of the node configurations the nixos platform writes to its hosts.

An arm stack renders one file per node of the arm; the live stack renders the edge node's file.
Each is a small module that imports `nixos/modules/arm-node.nix` or `edge-node/` (shipped
next to it, see bundle.py) and sets its options, so a flip is a diff of a few option values.

Every value is rendered here, at the boundary, in two steps: it must match a strict alphabet
(`;`, `{`, `}`, quotes, spaces and newlines never do), and it is then written as an escaped Nix
string, so that `"`, `${` or `\\` could not leave the string even if an alphabet were widened.
The modules check the same alphabets again with their option types, which protects hand-written
node configs as well.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bluegreen import nginx
from bluegreen.config import COLORS, LIMIT_WHEN, Backpressure, Cache, Maintenance, Shadow
from bluegreen.reader import BANNER, STACK, URL_PATH, VERSION
from bluegreen.switch import maintenance_body
from platforms.nixos.bundle import edge_module_text

_PATTERNS = {
    "address": r"(\[[0-9A-Fa-f:.]+]|[A-Za-z0-9][A-Za-z0-9.-]{0,252}):[0-9]{1,5}",
    "host": r"[0-9A-Fa-f:.]+|[A-Za-z0-9][A-Za-z0-9.-]{0,252}",
    "version": VERSION.pattern,
    "path": URL_PATH.pattern,
    "name": r"[a-z][a-z0-9-]{0,62}",
    "stack": STACK.pattern,
    "color": "|".join(COLORS),
    "parameter": r"[a-z][a-z_]{0,31}",
    "word": r"[A-Za-z0-9._-]{1,64}",
    "banner": BANNER.pattern,
    # Sent inside nginx single quotes: no quote to end it, no `$` to expand, one line.
    "body": r"[^'$\\\n\r]{1,1000}",
}
_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def nix_string(value: str) -> str:
    """`value` as a Nix string literal that evaluates to exactly `value`."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def checked(kind: str, value: str) -> str:
    """`value` if it fits the alphabet of `kind`; a ValueError naming both otherwise."""
    if not isinstance(value, str) or not re.fullmatch(_PATTERNS[kind], value):
        raise ValueError(
            f"refusing to render {value!r} as a {kind} into a NixOS node configuration: "
            f"it must match {_PATTERNS[kind]}"
        )
    return value


def _str(kind: str, value: str) -> str:
    return nix_string(checked(kind, value))


def _int(value: int, low: int, high: int) -> str:
    number = int(value)
    if isinstance(value, bool) or number != value or not low <= number <= high:
        raise ValueError(f"refusing to render {value!r}: an integer from {low} to {high} expected")
    return str(number)


def host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets as nginx and URLs want it."""
    checked("host", host)
    return f"[{host}]:{int(port)}" if ":" in host else f"{host}:{int(port)}"


def file_name(app: str, role: str) -> str:
    """The file a stack owns in the host's /etc/nixos/bluegreen, e.g. `shop-blue.nix`."""
    return f"{checked('name', f'{app}-{role}')}.nix"


def arm_node(
    *,
    stack: str,
    node: str,
    color: str,
    version: str,
    port: int,
    health_path: str,
    data: str = "",
) -> str:
    """One arm node's configuration: the app at `version`; `data`, its lines of nixos_data.py."""
    return f"""\
# Rendered by bluegreen for stack {checked("stack", stack)}, node {checked("host", node)}.
# `pulumi up -s {stack}` overwrites this file; change Pulumi.{stack}.yaml instead.
{{ ... }}:

{{
  imports = [ ./nixos/modules/arm-node.nix ];

  services.bluegreen-arm = {{
    enable = true;
    color = {_str("color", color)};
    version = {_str("version", version)};
    port = {_int(port, 1, 65535)};
    healthPath = {_str("path", health_path)};
{data}  }};
}}
"""


@dataclass(frozen=True)
class EdgeConfig:
    text: str
    """The Nix file."""
    generation: str
    """Fingerprint of the switch state, sent by the edge as `X-Bluegreen-Edge-Generation`."""
    conf: str
    """Fingerprint of the structural options (and the module they configure): nginx.conf."""
    state: dict
    """The switch state the module writes to /etc/bluegreen-edge/switch.json (`switch_state`)."""


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _by_color(values: Mapping[str, Any], render: Any) -> str:
    """`{ blue = ...; green = ...; }`, each value rendered by `render`."""
    items = [f"{checked('color', c)} = {render(v)};" for c, v in sorted(values.items())]
    return "{ " + " ".join(items) + " }" if items else "{ }"


def edge_node(
    *,
    stack: str,
    app: str,
    active_color: str,
    nodes: Mapping[str, Sequence[str]],
    weights: Mapping[str, int],
    versions: Mapping[str, str],
    port: int,
    maintenance: Maintenance,
    cache: Cache,
    shadow: Shadow,
    backpressure: Backpressure,
    sticky: bool = False,
    limits_until: int | None = None,
    prometheus_port: int | None = None,
    lease: nginx.Lease,
    probe_token: str,
    queue_port: int = 18095,
) -> EdgeConfig:
    """The edge node's configuration: nginx with one upstream group per colour of `nodes`
    (`nginx.groups`), and the switch state (`nginx.switch_state`) that says which colour takes
    the traffic. The options that make nginx.conf come first, those of the switch state after
    them; a flip changes the second kind only, so nginx is not reloaded. `limits_until`: epoch
    seconds (an integer: Nix writes large floats inexactly) when the limits of
    bluegreen:limitWhen "hold" end. With `prometheus_port`, the node also runs Prometheus there,
    scraping every node's metrics (the hold reads it); None: the operator's own Prometheus does
    (bluegreen:prometheusUrl). `probe_token`: the edge's secret (`nginx.probe_token`), which
    lands in the node's file and so in its Nix store."""
    m, b = maintenance, backpressure
    if m.status not in (503, 423):
        raise ValueError(f"refusing to render maintenance status {m.status}: 503 or 423 expected")
    if b.when not in LIMIT_WHEN:
        raise ValueError(f"refusing to render limitWhen {b.when!r}: one of {LIMIT_WHEN} expected")
    if (
        set(weights) - set(nodes)
        or sum(weights.values()) != 100
        or weights.get(active_color, 0) <= 0
    ):
        raise ValueError(
            f"refusing to render the weights {dict(weights)} with {active_color} active: one per "
            f"arm of {sorted(nodes)}, adding up to 100, the active colour's above 0"
        )
    servers = "\n".join(
        f"      {{ address = {_str('address', a)}; color = {_str('color', c)}; }}"
        for c in sorted(nodes)
        for a in nodes[c]
    )
    failover = " ".join(
        f"{checked('parameter', k)} = "
        + (_int(v, 0, 1_000_000) if isinstance(v, int) else _str("word", v))
        + ";"
        for k, v in sorted(nginx.FAILOVER.items())
    )
    if prometheus_port is None:
        prometheus = "    prometheus.enable = false;\n"
    else:
        prometheus = (
            "    prometheus = {\n"
            "      enable = true;\n"
            f"      port = {_int(prometheus_port, 1, 65535)};\n"
            "    };\n"
        )
    # What nginx.conf (and its fingerprint) is made of: shadowing on or off; its share is state.
    structure = f"""\
    upstreamPrefix = {nix_string(nginx.group_name(checked("name", app), "")[:-1])};
    port = {_int(port, 1, 65535)};
    servers = [
{servers}
    ];
    # The same parameters and keep-alive as bluegreen.nginx.groups and render_group.
    serverParameters = {{ {failover} }};
    keepalive = {_int(nginx.KEEPALIVE, 1, 100_000)};
    cache.enable = {_bool(cache.enabled)};
    cache.maxSize = {_int(cache.max_size_mb, 1, 1_000_000)};
    limits.rate = {_int(b.rate, 0, 1_000_000)};
    limits.burst = {_int(b.burst, 0, 1_000_000)};
    limits.connections = {_int(b.connections, 0, 1_000_000)};
    maintenance.queue = {{
      paths = [ {" ".join(_str("path", p) for p in m.queue.paths)} ];
      maxBodyKb = {_int(m.queue.max_body_kb, 1, 10240)};
      soakSeconds = {_int(m.queue.soak_s, 0, 3600)};
      rate = {_int(m.queue.rate, 1, 10000)};
      burst = {_int(m.queue.burst, 0, 100000)};
      connections = {_int(m.queue.connections, 1, 100000)};
      maxPending = {_int(m.queue.max_pending, 1, 10_000_000)};
      maxPendingMb = {_int(m.queue.max_pending_mb, 1, 1_000_000)};
      maxPerClient = {_int(m.queue.max_per_client, 1, 10_000_000)};
      minFreeMb = {_int(m.queue.min_free_mb, 0, 1_000_000)};
      retryMinutes = {_int(m.queue.retry_minutes, 1, 10080)};
      port = {_int(queue_port, 1, 65535)};
    }};
"""
    shadowing = int(_int(shadow.percent, 0, 100)) > 0
    conf = nginx.generation(f"{structure}shadowing = {_bool(shadowing)};\n{edge_module_text()}")
    state = nginx.switch_state(
        conf_generation=conf,
        active=active_color,
        weights=weights,
        sticky=sticky,
        versions=versions,
        maintenance=m,
        shadow=shadow,
        backpressure=b,
        limits_until=limits_until,
        lease=lease,
        probe_token=probe_token,
    )
    until = (state["limits"] or {}).get("until")
    text = f"""\
# Rendered by bluegreen for stack {checked("stack", stack)} from its bluegreen:activeColor.
# `pulumi up -s {stack}` overwrites this file; a flip is a change of Pulumi.{stack}.yaml.
{{ ... }}:

{{
  imports = [ ./nixos/modules/edge-node ];

  services.bluegreen-edge = {{
    enable = true;
{structure}    configGeneration = "{conf}";
{prometheus}
    # The switch state (/etc/bluegreen-edge/switch.json), which nginx reads per request: what
    # changes below changes no nginx config, and nginx is not reloaded.
    activeColor = {_str("color", active_color)};
    weights = {_by_color(weights, lambda w: _int(w, 0, 100))};
    stickyCanary = {_bool(sticky)};
    versions = {_by_color(versions, lambda v: _str("version", v))};
    maintenance = {{
      enable = {_bool(m.enabled)};
      status = {_int(m.status, 423, 503)};
      retryAfter = {_int(m.retry_after_s, 1, 86400)};
      banner = {_str("banner", m.banner)};
      body = {_str("body", maintenance_body(m))};
      window.start = {_epoch(m.window.start)};
      window.end = {_epoch(m.window.end)};
    }};
    lease = {{
      fence = {_int(lease.fence, 1, 2**62)};
      since = {_int(int(lease.since), 0, 2**62)};
      handover = {_int(lease.handover, 1, 600)};
{_shared(lease, active_color)}    }};
    shadow = {{ percent = {_int(shadow.percent, 0, 100)}; writes = {_bool(shadow.writes)}; }};
    limits.retryAfter = {_int(b.retry_after_s, 1, 3600)};
    limits.until = {"null" if until is None else _int(until, 0, 2**62)};
    probeToken = "{state["probe"]}";
    generation = "{state["generation"]}";
  }};
}}
"""
    return EdgeConfig(text=text, generation=state["generation"], conf=conf, state=state)


def _shared(lease: nginx.Lease, active: str) -> str:
    """What only the one lease of several edges sets (one edge's file stays as it was): no stamp
    on activation, and its holder, null for nobody."""
    holder = "null" if lease.nobody else _str("color", active)
    return f"      shared = true;\n      holder = {holder};\n" if lease.shared else ""


def _epoch(moment: datetime | None) -> str:
    """A window's time as whole epoch seconds (Nix writes large floats inexactly), or null."""
    return "null" if moment is None else _int(int(moment.timestamp()), 0, 2**62)


def edge_spec(
    *,
    stack: str,
    app: str,
    active_color: str,
    nodes: Mapping[str, Sequence[str]],
    weights: Mapping[str, int],
    versions: Mapping[str, str],
    port: int,
    maintenance: Maintenance,
    cache: Cache,
    shadow: Shadow,
    backpressure: Backpressure,
    sticky: bool,
    prometheus_port: int | None,
    handover: int = 5,
    queue_port: int = 18095,
) -> dict[str, Any]:
    """`edge_node`'s arguments as the edge host resource carries them (JSON): the host renders
    the file itself, since with bluegreen:limitWhen "hold" the end of the limits depends on
    when traffic last moved (`host.EdgeHostProvider`)."""
    return {
        "stack": stack,
        "app": app,
        "activeColor": active_color,
        "nodes": {c: list(a) for c, a in nodes.items()},
        "weights": dict(weights),
        "versions": dict(versions),
        "port": port,
        **nginx.Features(maintenance, cache, shadow, backpressure).props(),
        "sticky": sticky,
        "prometheusPort": prometheus_port,
        "handover": handover,
        "queuePort": queue_port,
    }


def edge_from_spec(
    spec: Mapping[str, Any], limits_until: int | None, lease: nginx.Lease, probe_token: str
) -> EdgeConfig:
    """`edge_node` of an `edge_spec` (numbers may come back from the engine as floats)."""
    features = nginx.Features.from_props(spec)
    port = spec.get("prometheusPort")
    return edge_node(
        stack=spec["stack"],
        app=spec["app"],
        active_color=spec["activeColor"],
        nodes={color: list(a) for color, a in spec["nodes"].items()},
        weights={color: int(w) for color, w in spec["weights"].items()},
        versions=dict(spec["versions"]),
        port=int(spec["port"]),
        maintenance=features.maintenance,
        cache=features.cache,
        shadow=features.shadow,
        backpressure=features.backpressure,
        sticky=bool(spec["sticky"]),
        limits_until=limits_until,
        prometheus_port=None if port is None else int(port),
        lease=lease,
        probe_token=probe_token,
        queue_port=int(spec.get("queuePort") or 18095),
    )
