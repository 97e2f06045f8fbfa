"""The nginx text of the edge. One renderer for every platform that has an nginx edge.

`render_local` is the whole nginx.conf of the local edge, and the reference for the NixOS edge
module (nixos/modules/edge-node.nix), which states the same in the nixpkgs nginx module's shape:
the upstream groups of `groups` with `FAILOVER` and `KEEPALIVE`, the `JS_VARIABLES` of switch.js,
the same locations; and it writes the switch state `switch_state` builds. Unit tests evaluate
the module and compare it with these. Every value rendered here was validated by
`bluegreen.config`, and `_token` refuses anything that could still break out of a directive.
"""

from __future__ import annotations

import grp
import hashlib
import json
import pwd
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bluegreen.config import Backpressure, Cache, Maintenance, Queue, Shadow, Window, utc_text
from bluegreen.probe import CLIENT_HEADER, REQUEST_HEADERS, RETRY_AFTER_HEADER, new_token
from bluegreen.switch import LEASE_PATH, STATUS_PATH, WRITE_METHODS, generation, maintenance_body


def _refuse_unless(pattern: str, value: str, allowed: str) -> str:
    if not re.fullmatch(pattern, value):
        raise ValueError(f"refusing to render {value!r} into nginx config: {allowed}")
    return value


def _token(value: str) -> str:
    """Refuse a value that could end a directive or open a block (`;`, `{`, `}`, quotes, spaces)."""
    return _refuse_unless(r"[A-Za-z0-9._:/\[\]-]+", value, "only [A-Za-z0-9._:/[]-] allowed")


# A node that fails once is left alone for 2 s: an arm restarting during a flip costs one retry on
# the other server rather than a stream of failed requests.
FAILOVER: dict[str, int | str] = {"max_fails": 1, "fail_timeout": "2s"}
"""nginx `server` parameters of every node of the colour a group is for."""
KEEPALIVE = 32
"""Idle keep-alive connections from the edge to the arms, per upstream group."""


def group_name(app: str, color: str, shadow: bool = False) -> str:
    """The upstream group of one colour: `bluegreen_<app>_<colour>`, or its shadow group."""
    return f"bluegreen_{app.replace('-', '_')}_{'shadow_' if shadow else ''}{color}"


def groups(nodes: Mapping[str, Sequence[str]]) -> dict[str, list[tuple[str, dict]]]:
    """Each colour's upstream group as (address, server parameters): the colour's nodes with
    `FAILOVER`, then the other colour's as `backup`, which nginx uses only when every node of the
    colour has failed. Traffic is moved between groups per request (switch.js), never by
    rewriting them, so a flip changes nothing here."""
    out = {}
    for color in sorted(nodes):
        own = [(a, dict(FAILOVER)) for a in nodes[color]]
        spare = [(a, {"backup": True}) for c in sorted(nodes) if c != color for a in nodes[c]]
        out[color] = own + spare
    return out


def render_group(
    name: str, servers: Sequence[tuple[str, Mapping]], keepalive: int = KEEPALIVE
) -> str:
    """One `upstream` block."""
    lines = [f"upstream {_token(name)} {{"]
    for address, params in servers:
        words = [k if v is True else f"{k}={_token(str(v))}" for k, v in params.items()]
        lines.append(f"    server {' '.join([_token(address), *words])};")
    lines.append(f"    keepalive {int(keepalive)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# The nginx text the local edge and the NixOS edge module (nixos/modules/edge-node.nix) share has
# one home, bluegreen/nginx_text/: the module reads it with builtins.readFile, and so does this.
_SHARED = Path(__file__).resolve().parent / "nginx_text"
STICKY_MAPS = (_SHARED / "sticky-maps.conf").read_text()
"""Sticky canary only: a client keeps its id in the bluegreen_client cookie, new clients get one."""
PROXY = (_SHARED / "proxy.conf").read_text()
"""How the edge proxies to the upstream, after `proxy_pass`."""
SWITCH_JS = (_SHARED / "switch.js").read_text()
"""The per-request switch (njs): which colour a request goes to, maintenance, limits, shadow."""

# The variables switch.js sets, by the function that computes each; nginx evaluates one only when
# a directive uses it, once per request.
JS_VARIABLES = {
    "bluegreen_color": "color",
    "bluegreen_version": "version",
    "bluegreen_edge": "edge",
    "bluegreen_generation": "generation",
    "bluegreen_refuse": "refuse",
    "bluegreen_maintenance_body": "maintenanceBody",
    "bluegreen_banner": "banner",
    "bluegreen_limit": "limitKey",
    "bluegreen_retry_after": "retryAfter",
    "bluegreen_sticky_cookie": "setCookie",
    "bluegreen_shadow": "shadow",
    "bluegreen_no_cache": "noCache",
    "bluegreen_health": "health",
    "bluegreen_probe": "probe",
    "bluegreen_replay": "replay",
    "bluegreen_cache_bypass": "cacheBypass",
}
SHADOW_LOCATION = "/_bluegreen_shadow"
ARM_PREFIX = "/_arm/"
"""Where an arm serves its own documents (app/server.py `JOURNAL_PATH`): 404 through the edge."""
QUEUE_REQUEST_HEADERS = {
    RETRY_AFTER_HEADER: "$bluegreen_retry_after",
    CLIENT_HEADER: "$remote_addr",
}
"""What the edge sends the queue service of `REQUEST_HEADERS`: the Retry-After it would have
answered, and the address the write came from (to the service, every write comes from nginx:
without it, all clients without a credential would share one client's share of the queue);
every other one is removed. Toward the arms, bluegreen/nginx_text/proxy.conf says."""
QUEUE_CAPS = {
    "maxPending": "max_pending",
    "maxPendingMb": "max_pending_mb",
    "maxPerClient": "max_per_client",
    "minFreeMb": "min_free_mb",
    "retryMinutes": "retry_minutes",
}
"""The queue's caps and retry horizon in the engine's props (camelCase) and in `Queue`."""
QUEUE_GROUP = "bluegreen_{app}_queue"
"""The upstream of the maintenance queue's service."""
SAFE_RELOAD_SINCE = (1, 27, 4)
"""The nginx that has `keepalive_min_timeout`: with it, a reload closes a kept-alive connection
only after one more response on it, so even a structural change resets no client."""
KEEPALIVE_MIN_TIMEOUT = "1s"


@dataclass(frozen=True)
class Features:
    """What an nginx edge does besides switching, as its settings say. A dynamic resource keeps
    them in its inputs as `props()` (the JSON the engine stores and diffs) and its provider reads
    them back with `from_props`."""

    maintenance: Maintenance
    cache: Cache
    shadow: Shadow
    backpressure: Backpressure

    def props(self) -> dict[str, Any]:
        m, c, sh, b = self.maintenance, self.cache, self.shadow, self.backpressure
        return {
            "maintenance": {
                "enabled": m.enabled,
                "status": m.status,
                "retryAfter": m.retry_after_s,
                "banner": m.banner,
                "start": utc_text(m.window.start),
                "end": utc_text(m.window.end),
                "queue": {
                    "paths": list(m.queue.paths),
                    "store": m.queue.store,
                    "maxBodyKb": m.queue.max_body_kb,
                    "soakSeconds": m.queue.soak_s,
                    "rate": m.queue.rate,
                    "burst": m.queue.burst,
                    "connections": m.queue.connections,
                    **{prop: getattr(m.queue, field) for prop, field in QUEUE_CAPS.items()},
                },
            },
            "cache": {
                "enabled": c.enabled,
                "maxSizeMb": c.max_size_mb,
                "warmPaths": list(c.warm_paths),
            },
            "shadow": {"percent": sh.percent, "writes": sh.writes},
            "backpressure": {
                "rate": b.rate,
                "burst": b.burst,
                "connections": b.connections,
                "retryAfter": b.retry_after_s,
                "when": b.when,
                "holdSeconds": b.hold_s,
            },
        }

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> Features:
        """From `props()` as the engine gives them back (numbers may come back as floats)."""
        m, c, sh, b = (props[k] for k in ("maintenance", "cache", "shadow", "backpressure"))
        q = m["queue"]
        return cls(
            Maintenance(
                bool(m["enabled"]),
                int(m["status"]),
                int(m["retryAfter"]),
                m["banner"],
                Window(*(_moment(m.get(k)) for k in ("start", "end"))),
                Queue(
                    tuple(q["paths"]),
                    q["store"],
                    int(q["maxBodyKb"]),
                    int(q["soakSeconds"]),
                    # Absent from what an older bluegreen stored: its defaults.
                    **{k: int(q[k]) for k in ("rate", "burst", "connections") if k in q},
                    **{f: int(q[p]) for p, f in QUEUE_CAPS.items() if p in q},
                ),
            ),
            Cache(bool(c["enabled"]), int(c["maxSizeMb"]), tuple(c["warmPaths"])),
            Shadow(int(sh["percent"]), bool(sh["writes"])),
            Backpressure(
                rate=int(b["rate"]),
                burst=int(b["burst"]),
                connections=int(b["connections"]),
                retry_after_s=int(b["retryAfter"]),
                when=b["when"],
                hold_s=int(b["holdSeconds"]),
            ),
        )


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


SERVED_ROOT = "/run/bluegreen-edge"
WORKER_USER = "nobody"
"""The user nginx's workers run as when its master runs as root (in that user's own group)."""


def worker_user() -> tuple[str, str]:
    """`WORKER_USER` and its primary group's name (nogroup on Debian, nobody elsewhere)."""
    return WORKER_USER, grp.getgrgid(pwd.getpwnam(WORKER_USER).pw_gid).gr_name


def served_dir(run_dir: str, as_root: bool) -> str:
    """Where the local edge keeps what its workers read and write: the switch state, the lease
    stamps, the temp and cache directories. The run dir, unless nginx runs as root: then its
    workers run as `WORKER_USER`, who may not reach the run dir at all (a project under /root, a
    test's 0700 temp dir), and they get a directory of their own under `SERVED_ROOT`, which
    only root can create in, named by the run dir."""
    if not as_root:
        return run_dir
    return f"{SERVED_ROOT}/{hashlib.sha256(run_dir.encode()).hexdigest()[:16]}"


LEASE_DIR = "lease"
"""The local edge's directory of lease stamps, in its `served_dir` (`$bluegreen_lease_dir`)."""
LEASE_STAMP = "lease-{fence}"
"""The file whose mtime is when the edge began serving the lease with `fence`, by the edge's own
clock: switch.js serves it as the lease's `since`. It is created on the edge host once the state
carrying that fence is in place, and the stamps of other fences are removed then."""


@dataclass(frozen=True)
class Lease:
    """Who may run background writers (`bluegreen writer`), as the edge serves it read-only at
    `LEASE_PATH`: the active colour, unless writes are frozen. `fence` only grows with each change
    of pointer, and across a restore after a failed confirmation, so a store can refuse a writer
    that lost the lease; a new holder's writers start only `handover` seconds after the edge began
    serving the fence (`LEASE_STAMP`), when the old holder's have stopped."""

    fence: int
    since: float
    """Epoch seconds of the last change of pointer, by the operator's clock: a record for people.
    The edge serves its own stamp (`LEASE_STAMP`) instead, since this one is taken before the
    copy, the rebuild or the warm-up, and on another machine's clock."""
    handover: int

    @classmethod
    def next(
        cls, previous: Mapping[str, Any] | None, active: str, handover: int, now: float
    ) -> Lease:
        """The lease for `active` after `previous` (a switch state's `lease`, with its holder's
        colour as `color`): the same one while the pointer stays, a higher fence when it moves."""
        if previous and previous.get("color") == active:
            return cls(int(previous["fence"]), float(previous["since"]), handover)
        fence = int(previous["fence"]) + 1 if previous else 1
        return cls(fence, round(float(now), 3), handover)


def restored(previous: Mapping[str, Any], failed: Mapping[str, Any], now: float) -> dict:
    """The switch state `previous` to put back after the state `failed` was not confirmed. Its
    lease gets a fence no lower than the failed one's, which the edge may have served (writers
    may hold it): the same while the holder is the same, else one higher, a new lease. The
    generation stays `previous`'s: it is what the edge resource recorded as serving, and the
    fence moves no traffic."""
    old, lost = previous.get("lease"), failed.get("lease")
    if not (old and lost):
        return dict(previous)
    back = Lease.next(lost, old["color"], int(old["handover"]), now)
    return {
        **previous,
        "lease": {**old, "fence": max(back.fence, int(old["fence"])), "since": back.since},
    }


# The probe token: why a secret in the switch state. The edge must tell bluegreen's own requests
# (the confirmation of a flip, the cache warm-up, the queue service's polls and replays) from a
# client's that sends the same header. A separate listener would need a second port opened and
# confirmed, and would not confirm what users' traffic sees, which is the point of the probe; a
# signed header (HMAC over time and path) needs crypto in njs and clocks in step, for requests
# that come from the operator's machine or the edge host itself. A random token in the state
# switch.js already reads per request costs neither, and changes with nothing bluegreen renders.
# Whoever can read the state can read it: the edge host's operators (and, on NixOS, the host's
# local users: the state is in the Nix store), who can reach the arms directly anyway.
PROBE_TOKEN = r"[0-9a-f]{32,128}"


def probe_token(*kept: object) -> str:
    """The edge's probe token: the first of `kept` that is one (the state nginx serves, the
    resource's last outputs), so that an edge keeps its token across updates and what holds it
    (the queue service) keeps working; a new one for a new edge."""
    for token in kept:
        if isinstance(token, str) and re.fullmatch(PROBE_TOKEN, token):
            return token
    return new_token()


def switch_state(
    *,
    conf_generation: str,
    active: str,
    weights: Mapping[str, int],
    sticky: bool,
    versions: Mapping[str, str],
    maintenance: Maintenance,
    shadow: Shadow,
    backpressure: Backpressure,
    limits_until: float | None,
    lease: Lease,
    probe_token: str,
) -> dict:
    """What moves traffic, as switch.js reads it per request (its header lists the fields).
    `limits_until`: when the limits of `backpressure.when == "hold"` end (epoch seconds).
    `probe_token`: the edge's secret (`probe_token`), by which bluegreen's own requests prove
    themselves to it."""
    m, b = maintenance, backpressure
    _refuse_unless(PROBE_TOKEN, probe_token, "a probe token is 32 to 128 hex digits")
    window = {
        "start": m.window.start.timestamp() if m.window.start else None,
        "end": m.window.end.timestamp() if m.window.end else None,
    }
    if m.status not in (423, 503):
        raise ValueError(f"maintenance status must be 423 or 503, got {m.status}")
    state = {
        "conf": conf_generation,
        "active": active,
        "weights": dict(sorted(weights.items())),
        "sticky": sticky,
        "versions": dict(sorted(versions.items())),
        "writes": list(WRITE_METHODS),
        "maintenance": {
            "status": m.status,
            "retryAfter": m.retry_after_s,
            "banner": m.banner,
            "body": maintenance_body(m),
            "queue": {"paths": list(m.queue.paths), "maxBody": m.queue.max_body_kb * 1024}
            if m.queue.enabled
            else None,
        }
        if m.enabled
        else None,
        "window": window if m.window.start or m.window.end else None,
        "lease": {
            "color": active,
            "fence": lease.fence,
            "since": lease.since,
            "handover": lease.handover,
        },
        "shadow": {"percent": shadow.percent, "writes": shadow.writes} if shadow.percent else None,
        "limits": {
            "retryAfter": b.retry_after_s,
            # "hold" before any traffic moved under it: off until the next flip (0, long past).
            "until": None if b.when == "always" else (limits_until or 0),
        }
        if b.enabled
        else None,
        "warm": None,
        "probe": probe_token,
    }
    state["generation"] = generation(conf_generation + json.dumps(state, sort_keys=True))
    return state


def render_local(
    *,
    app: str,
    run_dir: str,
    listen: str,
    nodes: Mapping[str, Sequence[str]],
    js_module: str,
    cache: Cache,
    shadow: Shadow,
    backpressure: Backpressure,
    queue: Queue | None = None,
    queue_listen: str = "",
    as_root: bool = False,
    safe_reload: bool = False,
) -> str:
    """The whole nginx.conf of the local edge; `run_dir` is the nginx prefix (-p). `as_root`:
    the master runs as root; its workers run as `WORKER_USER`, never root (they parse every
    client's request), with what they read and write in `served_dir`.

    Only what is structural is here: the listen address, the arms' nodes, the features that are
    on. Which colour takes traffic, maintenance, and whether the limits apply are in the switch
    state (`switch_state`), so changing them needs no reload. `safe_reload`: this nginx is at
    least `SAFE_RELOAD_SINCE`, and the reloads structural changes need keep kept-alive clients.
    `queue`, `queue_listen`: the maintenance queue and its service's address, when one is on."""
    run = _token(run_dir)
    serve = _token(served_dir(run_dir, as_root))
    user = "user {} {};\n".format(*map(_token, worker_user())) if as_root else ""
    js_sets = "".join(f"    js_set ${var} bluegreen.{fn};\n" for var, fn in JS_VARIABLES.items())
    upstreams = "".join(
        _indent(render_group(group_name(app, color), servers))
        for color, servers in groups(nodes).items()
    )
    b = backpressure
    limits_http = (
        f"    limit_req_zone $bluegreen_limit zone=bluegreen_rate:1m rate={int(b.rate)}r/s;\n"
        "    limit_req_status 429;\n"
        if b.rate
        else ""
    ) + (
        "    limit_conn_zone $bluegreen_limit zone=bluegreen_conn:1m;\n    limit_conn_status 503;\n"
        if b.connections
        else ""
    )
    # nginx refuses `burst=0`: no burst is said by leaving it out.
    burst = f" burst={int(b.burst)}" if b.burst else ""
    limits = (f"            limit_req zone=bluegreen_rate{burst} nodelay;\n" if b.rate else "") + (
        f"            limit_conn bluegreen_conn {int(b.connections)};\n" if b.connections else ""
    )
    cache_http = (
        f"    proxy_cache_path {serve}/cache levels=1:2 keys_zone=bluegreen_cache:10m "
        f"max_size={int(cache.max_size_mb)}m inactive=60m use_temp_path=off;\n"
        if cache.enabled
        else ""
    )
    cached = (
        """\
            # Keyed by the colour and version that answer: a flip or a rollback never serves
            # the other arm's content. Only what the arm marks cacheable is kept.
            proxy_cache bluegreen_cache;
            proxy_cache_key "$bluegreen_color $bluegreen_version $scheme://$host$request_uri";
            proxy_cache_bypass $bluegreen_cache_bypass;
            proxy_no_cache $bluegreen_no_cache;
            add_header X-Bluegreen-Cache $upstream_cache_status always;
"""
        if cache.enabled
        else ""
    )
    shadowing = shadow.percent > 0
    shadow_groups = (
        "".join(
            _indent(
                render_group(
                    group_name(app, color, shadow=True), [(a, dict(FAILOVER)) for a in addresses]
                )
            )
            for color, addresses in sorted(nodes.items())
        )
        if shadowing
        else ""
    )
    mirror = f"            mirror {SHADOW_LOCATION};\n" if shadowing else ""
    shadow_location = (
        f"""\
        # Shadow traffic: a share of live requests, copied to the idle arm; its answers are
        # discarded. Logged like users' requests, so the idle arm's figures can be compared.
        location = {SHADOW_LOCATION} {{
            internal;
            if ($bluegreen_shadow = "") {{ return 204; }}
            proxy_pass http://{group_name(app, "", shadow=True)}$bluegreen_shadow$request_uri;
{_indent(PROXY, 3)}            proxy_set_header X-Bluegreen-Shadow 1;
            log_subrequest on;
            access_log {run}/access.log bluegreen if=$bluegreen_shadow;
        }}
"""
        if shadowing
        else ""
    )
    queueing = queue is not None and queue.enabled
    queue_group = (
        _indent(
            render_group(QUEUE_GROUP.format(app=app.replace("-", "_")), [(queue_listen, {})], 8)
        )
        if queueing
        else ""
    )
    too_large = json.dumps(
        {
            "error": "too large",
            "message": f"a write kept during maintenance has at most {queue.max_body_kb} KiB",
        }
        if queue
        else {},
        separators=(",", ":"),
    )
    queue_divert = (
        f"""\
            # Maintenance with a queue: a keyed write to a queued path is kept (202, a receipt)
            # by the queue service instead of being refused.
            error_page 418 = @bluegreen_queue;
            recursive_error_pages on;
            if ($bluegreen_refuse = queue) {{ return 418; }}
            if ($bluegreen_refuse = 413) {{ return 413 '{too_large}'; }}
"""
        if queueing
        else ""
    )
    queue_limits = (
        f"            limit_req zone=bluegreen_queue_rate"
        f"{f' burst={int(queue.burst)}' if queue.burst else ''} nodelay;\n"
        "            limit_req_status 429;\n"
        f"            limit_conn bluegreen_queue_conn {int(queue.connections)};\n"
        "            limit_conn_status 429;\n"
        if queueing and queue is not None
        else ""
    )
    removed = '""'
    queue_headers = "".join(
        f"            proxy_set_header {name} {QUEUE_REQUEST_HEADERS.get(name, removed)};\n"
        for name in REQUEST_HEADERS
    )
    queue_http = (
        "    limit_req_zone $binary_remote_addr zone=bluegreen_queue_rate:1m "
        f"rate={int(queue.rate)}r/s;\n"
        "    limit_conn_zone $binary_remote_addr zone=bluegreen_queue_conn:1m;\n"
        if queueing and queue is not None
        else ""
    )
    queue_locations = (
        f"""\
        location @bluegreen_queue {{
            # The queue service caps bodies too: switch.js refuses by Content-Length, and a
            # chunked body is counted by the service.
            client_max_body_size {int(queue.max_body_kb)}k;
            proxy_pass http://{QUEUE_GROUP.format(app=app.replace("-", "_"))};
            # Diverted in the rewrite phase, before the edge-wide limits (which may be off):
            # each client's own rate and connections cap what it can make the queue keep.
{queue_limits}            proxy_http_version 1.1;
            proxy_headers_hash_bucket_size 128;
            proxy_set_header Connection "";
{queue_headers}            # One Retry-After, the edge's: the service's own would repeat it.
            proxy_hide_header Retry-After;
            add_header Retry-After $bluegreen_retry_after always;
            add_header X-Bluegreen-Banner $bluegreen_banner always;
            # The queue service is down: the write is refused, as without a queue, not lost.
            error_page 502 504 = @bluegreen_unqueued;
        }}
        location @bluegreen_unqueued {{
            add_header Retry-After $bluegreen_retry_after always;
            return 503 $bluegreen_maintenance_body;
        }}
"""
        if queueing and queue is not None
        else ""
    )
    body = f"""\
# Rendered by bluegreen (components/edge.py); changes here are overwritten by `pulumi up -s live`.
# Which colour takes traffic is not in this file: switch.js reads it per request from switch.json.
# switch.js {generation(SWITCH_JS)}
load_module {_token(js_module)};
{user}worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {serve}/tmp/body;
    proxy_temp_path {serve}/tmp/proxy;
    fastcgi_temp_path {serve}/tmp/fastcgi;
    uwsgi_temp_path {serve}/tmp/uwsgi;
    scgi_temp_path {serve}/tmp/scgi;
    # One JSON line a request: which arm answered, its version, status and timings. The
    # hold-and-watch reads this log.
    log_format bluegreen escape=json '{{"time":"$time_iso8601","method":"$request_method",'
        '"uri":"$uri","status":$status,"request_time":$request_time,'
        '"upstream":"$upstream_addr","upstream_status":"$upstream_status",'
        '"upstream_time":"$upstream_response_time",'
        '"color":"$upstream_http_x_bluegreen_color","version":"$upstream_http_x_bluegreen_version",'
        '"probe":"$bluegreen_probe"}}';
    access_log {run}/access.log bluegreen;
    keepalive_timeout 30s;
{"    keepalive_min_timeout " + KEEPALIVE_MIN_TIMEOUT + ";" + chr(10) if safe_reload else ""}
    js_import bluegreen from {run}/switch.js;
{js_sets}    map $pid $bluegreen_state {{ default "{serve}/switch.json"; }}
    map $pid $bluegreen_lease_dir {{ default "{serve}/{LEASE_DIR}"; }}
    map $pid $bluegreen_conf {{ default "@GENERATION@"; }}
{_indent(STICKY_MAPS)}
{limits_http}{cache_http}{queue_http}{upstreams}{shadow_groups}{queue_group}
    server {{
        listen {_token(listen)};
        # The edge's own documents, read-only: nothing the edge serves changes state.
        location = {LEASE_PATH} {{
            default_type application/json;
            if ($request_method !~ ^(GET|HEAD)$) {{ return 405; }}
            add_header Cache-Control no-store always;
            js_content bluegreen.lease;
        }}
        location = {STATUS_PATH} {{
            default_type application/json;
            if ($request_method !~ ^(GET|HEAD)$) {{ return 405; }}
            add_header Cache-Control no-store always;
            js_content bluegreen.status;
        }}
        location = {STATUS_PATH}.html {{
            default_type "text/html; charset=utf-8";
            if ($request_method !~ ^(GET|HEAD)$) {{ return 405; }}
            add_header Cache-Control no-store always;
            js_content bluegreen.statusPage;
        }}
        location ^~ /_bluegreen/ {{ return 404; }}
        # An arm's own documents (app/server.py's journal of writes) are for operators on the
        # arm's network, not for the public.
        location ^~ {ARM_PREFIX} {{ return 404; }}
        location / {{
            default_type application/json;
            if ($bluegreen_color = "") {{ return 503; }}
{queue_divert}            # Maintenance (read-only) mode: other writes are refused before any arm.
            if ($bluegreen_refuse = 503) {{ return 503 $bluegreen_maintenance_body; }}
            if ($bluegreen_refuse = 423) {{ return 423 $bluegreen_maintenance_body; }}
{limits}{mirror}{cached}            proxy_pass http://{group_name(app, "")}$bluegreen_color;
{_indent(PROXY, 3)}            add_header X-Bluegreen-Edge $bluegreen_edge always;
            add_header X-Bluegreen-Edge-Generation $bluegreen_generation always;
            add_header X-Bluegreen-Banner $bluegreen_banner always;
            add_header Retry-After $bluegreen_retry_after always;
            add_header Set-Cookie $bluegreen_sticky_cookie;
        }}
{shadow_location}{queue_locations}    }}
}}
"""
    return body.replace("@GENERATION@", generation(body))


def conf_generation(text: str) -> str:
    """The fingerprint `render_local` wrote into `text` (`$bluegreen_conf`), which the switch state
    written for it must carry."""
    return text.split('map $pid $bluegreen_conf { default "', 1)[1].split('"', 1)[0]


def _indent(text: str, levels: int = 1) -> str:
    pad = "    " * levels
    return "".join(pad + line + "\n" if line else "\n" for line in text.splitlines())
