"""The nginx text of the edge. One renderer for every platform that has an nginx edge.

`render_upstream` is the part the `local` and `nixos` platforms share. The NixOS edge node states
the same upstream in the nginx module's own shape (`services.nginx.upstreams.<name>.servers`),
built from the same `servers_for` data, `FAILOVER` parameters and `KEEPALIVE`; a unit test
evaluates it and compares it with this text. Every value rendered here was validated by
`bluegreen.config`, and `_token` refuses anything that could still break out of a directive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bluegreen.config import Maintenance
from bluegreen.switch import WRITE_METHODS, generation, maintenance_body


def _refuse_unless(pattern: str, value: str, allowed: str) -> str:
    if not re.fullmatch(pattern, value):
        raise ValueError(f"refusing to render {value!r} into nginx config: {allowed}")
    return value


def _token(value: str) -> str:
    """Refuse a value that could end a directive or open a block (`;`, `{`, `}`, quotes, spaces)."""
    return _refuse_unless(r"[A-Za-z0-9._:/\[\]-]+", value, "only [A-Za-z0-9._:/[]-] allowed")


@dataclass(frozen=True)
class Server:
    """One `server` line of the upstream."""

    address: str
    """host:port of one node of an arm."""
    color: str
    """The arm the node belongs to."""
    weight: int
    """Share of traffic (0-100); 0 renders as `backup`, the idle arm nginx falls back to."""


def servers_for(nodes: Mapping[str, Sequence[str]], weights: Mapping[str, int]) -> list[Server]:
    """Each arm's nodes with the arm's weight, blue first."""
    order = sorted(nodes)  # a stable order keeps the flip diff to the weights alone
    return [Server(addr, color, weights.get(color, 0)) for color in order for addr in nodes[color]]


# A node that fails once is left alone for 2 s: an arm restarting during a flip costs one retry on
# the other server rather than a stream of failed requests.
FAILOVER: dict[str, int | str] = {"max_fails": 1, "fail_timeout": "2s"}
"""nginx `server` parameters of every server that takes traffic, after its weight."""
KEEPALIVE = 32
"""Idle keep-alive connections from the edge to the arms."""


def render_upstream(
    name: str, servers: Sequence[Server], keepalive: int = KEEPALIVE, sticky: bool = False
) -> str:
    """The upstream block: weighted servers for arms taking traffic, `backup` for the idle arm.

    `sticky` (canary steps only): each client is hashed to one arm by its `bluegreen_client`
    cookie, which the edge sets on its first response, so nobody bounces between versions."""
    if not any(s.weight > 0 for s in servers):
        raise ValueError(f"upstream {name} has no server with a weight above 0")
    lines = [f"upstream {_token(name)} {{"]
    if sticky and sum(s.weight > 0 for s in servers) > 1:
        lines.append("    hash $bluegreen_client consistent;")
    for s in servers:
        if s.weight > 0:
            failover = " ".join(f"{k}={_token(str(v))}" for k, v in FAILOVER.items())
            lines.append(
                f"    server {_token(s.address)} weight={int(s.weight)} {failover};  # {s.color}"
            )
        else:
            lines.append(f"    server {_token(s.address)} backup;  # {s.color} (idle)")
    lines.append(f"    keepalive {int(keepalive)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quoted(value: str) -> str:
    """A value inside double quotes: nothing that could close the string or start a variable."""
    return _refuse_unless(r'[^"\\$;{}\n\r]*', value, "quotes, $ ; { } refused")


# The nginx text the local edge and the NixOS edge module (nixos/modules/edge-node.nix) share has
# one home, nixos/modules/nginx/: the module reads it with builtins.readFile, and so does this.
_SHARED = Path(__file__).resolve().parent.parent / "nixos" / "modules" / "nginx"
STICKY_MAPS = (_SHARED / "sticky-maps.conf").read_text()
"""Sticky canary only: a client keeps its id in the bluegreen_client cookie, new clients get one."""
PROXY = (_SHARED / "proxy.conf").read_text()
"""How the edge proxies to the upstream, after `proxy_pass`."""
WRITES = "^(" + "|".join(WRITE_METHODS) + ")$"
"""The `$request_method` pattern maintenance mode refuses."""


def render_local(
    *,
    app: str,
    run_dir: str,
    listen: str,
    servers: Sequence[Server],
    active_color: str,
    maintenance: Maintenance,
    sticky: bool = False,
) -> str:
    """The whole nginx.conf of the local edge; `run_dir` is the nginx prefix (-p)."""
    upstream_name = f"bluegreen_{app.replace('-', '_')}"
    upstream = render_upstream(upstream_name, servers, sticky=sticky)
    m = maintenance
    banner = (
        f'            add_header X-Bluegreen-Banner "{_quoted(m.banner)}" always;\n'
        if m.enabled and m.banner
        else ""
    )
    status = int(m.status)
    if status not in (423, 503):
        raise ValueError(f"maintenance status must be 423 or 503, got {status}")
    refuse_writes = (
        f"""\
            # Maintenance (read-only) mode: writes are refused before they reach an arm.
            if ($request_method ~ {WRITES}) {{ return {status}; }}
            error_page {status} = @bluegreen_maintenance;
"""
        if m.enabled
        else ""
    )
    # Without a sticky canary no response sets a cookie nobody asked for.
    sticky_maps = _indent(STICKY_MAPS) + "\n" if sticky else ""
    set_cookie = "            add_header Set-Cookie $bluegreen_set_cookie;\n" if sticky else ""
    body = f"""\
# Rendered by bluegreen (components/edge.py); changes here are overwritten by `pulumi up -s live`.
worker_processes 1;
pid {_token(run_dir)}/nginx.pid;
error_log {_token(run_dir)}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {_token(run_dir)}/tmp/body;
    proxy_temp_path {_token(run_dir)}/tmp/proxy;
    fastcgi_temp_path {_token(run_dir)}/tmp/fastcgi;
    uwsgi_temp_path {_token(run_dir)}/tmp/uwsgi;
    scgi_temp_path {_token(run_dir)}/tmp/scgi;
    # One JSON line a request: which arm answered, its version, status and timings. The
    # hold-and-watch reads this log.
    log_format bluegreen escape=json '{{"time":"$time_iso8601","method":"$request_method",'
        '"uri":"$uri","status":$status,"request_time":$request_time,'
        '"upstream":"$upstream_addr","upstream_status":"$upstream_status",'
        '"upstream_time":"$upstream_response_time",'
        '"color":"$upstream_http_x_bluegreen_color","version":"$upstream_http_x_bluegreen_version",'
        '"probe":"$http_x_bluegreen_probe"}}';
    access_log {_token(run_dir)}/access.log bluegreen;
    keepalive_timeout 30s;

{sticky_maps}{_indent(upstream)}
    server {{
        listen {_token(listen)};
        location @bluegreen_maintenance {{
            default_type application/json;
            add_header Retry-After {int(m.retry_after_s)} always;
            add_header X-Bluegreen-Edge "{_token(active_color)}" always;
            add_header X-Bluegreen-Edge-Generation "@GENERATION@" always;
{banner}            return {status} '{maintenance_body(m)}';
        }}
        location / {{
{refuse_writes}            proxy_pass http://{upstream_name};
{_indent(PROXY, 3)}            add_header X-Bluegreen-Edge "{_token(active_color)}" always;
            add_header X-Bluegreen-Edge-Generation "@GENERATION@" always;
{set_cookie}{banner}        }}
    }}
}}
"""
    return body.replace("@GENERATION@", generation(body))


def _indent(text: str, levels: int = 1) -> str:
    pad = "    " * levels
    return "".join(pad + line + "\n" if line else "\n" for line in text.splitlines())
