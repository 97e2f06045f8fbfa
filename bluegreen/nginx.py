"""The nginx text of the edge that every platform with an nginx edge shares.

What the local edge's nginx.conf (bluegreen/nginx_conf/, `render_local`) and the NixOS edge module
(nixos/modules/edge-node) both state: the upstream groups of `groups` with `FAILOVER` and
`KEEPALIVE`, the `JS_VARIABLES` of switch.js, the edge's `OWN_DOCUMENTS`, the text of
bluegreen/nginx_text/; and the switch state `switch_state` builds, which both write. Unit tests
evaluate the module and compare it with these. Every value rendered here was validated by
`bluegreen.config`, and `word` refuses anything that could still break out of a directive.
One module, as the one vocabulary the NixOS module is pinned to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bluegreen.config import Backpressure, Cache, Maintenance, Queue, Shadow, Window, utc_text
from bluegreen.probe import new_token
from bluegreen.switch import LEASE_PATH, STATUS_PATH, WRITE_METHODS, generation, maintenance_body


def _refuse_unless(pattern: str, value: str, allowed: str) -> str:
    if not re.fullmatch(pattern, value):
        raise ValueError(f"refusing to render {value!r} into nginx config: {allowed}")
    return value


def word(value: str) -> str:
    """`value` as one nginx word: refused if it could end a directive or open a block (`;`, `{`,
    `}`, quotes, spaces)."""
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
    lines = [f"upstream {word(name)} {{"]
    for address, params in servers:
        words = [k if v is True else f"{k}={word(str(v))}" for k, v in params.items()]
        lines.append(f"    server {' '.join([word(address), *words])};")
    lines.append(f"    keepalive {int(keepalive)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# The nginx text the local edge and the NixOS edge module (nixos/modules/edge-node/) share has
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
OWN_DOCUMENTS = {
    LEASE_PATH: ("application/json", "lease"),
    STATUS_PATH: ("application/json", "status"),
    f"{STATUS_PATH}.html": ('"text/html; charset=utf-8"', "statusPage"),
}
"""What the edge answers itself, read-only (GET and HEAD) and never cached: each path's
`default_type` and the function of switch.js that serves it."""
SHADOW_LOCATION = "/_bluegreen_shadow"
ARM_PREFIX = "/_arm/"
"""Where an arm serves its own documents (app/server.py `JOURNAL_PATH`): 404 through the edge."""
QUEUE_CAPS = {
    "maxPending": "max_pending",
    "maxPendingMb": "max_pending_mb",
    "maxPerClient": "max_per_client",
    "minFreeMb": "min_free_mb",
    "retryMinutes": "retry_minutes",
}
"""The queue's caps and retry horizon in the engine's props (camelCase) and in `Queue`."""
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
    shared: bool = False
    """Served by every edge of several (bluegreen:edges): no edge stamps it; the live stack's
    `LeaseStamp` stamps them all at once, when every edge serves it, so no holder's writers start
    while another edge still serves the old holder (platforms/local/lease_stamp.py)."""
    nobody: bool = False
    """Held by nobody: the edges serve different colours (a flip in waves, between waves)."""

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

    @classmethod
    def across_edges(
        cls, given: Mapping[str, Any], previous: Mapping[str, Any] | None, handover: int, now: float
    ) -> Lease:
        """The lease every edge of several serves (`given`: the colour, None for nobody, and the
        fence the program chose for all of them), never below the fence this edge served."""
        fence = max(int(given["fence"]), int(previous["fence"]) if previous else 0)
        same = previous and int(previous["fence"]) == fence
        since = float(previous["since"]) if same else round(float(now), 3)
        return cls(fence, since, handover, shared=True, nobody=given.get("color") is None)


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
            "color": None if lease.nobody else active,
            "fence": lease.fence,
            "since": lease.since,
            "handover": lease.handover,
            **({"shared": True} if lease.shared else {}),
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


def indent(text: str, levels: int = 1) -> str:
    """`text` indented by `levels` of four spaces, every line ended; empty lines stay empty."""
    pad = "    " * levels
    return "".join(pad + line + "\n" if line else "\n" for line in text.splitlines())
