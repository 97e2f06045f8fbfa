"""The nginx text of the edge. One renderer for every platform that has an nginx edge.

`render_upstream` is the part the `local` and `nixos` platforms share: the NixOS edge node embeds
the very same upstream block. Every value rendered here was validated by `bluegreen.config`, and
`_token` refuses anything that could still break out of a directive.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_SAFE = re.compile(r"^[A-Za-z0-9._:/\[\]-]+$")


def _token(value: str) -> str:
    """Refuse a value that could end a directive or open a block (`;`, `{`, `}`, quotes, spaces)."""
    if not _SAFE.match(value):
        raise ValueError(
            f"refusing to render {value!r} into nginx config: only [A-Za-z0-9._:/[]-] allowed"
        )
    return value


@dataclass(frozen=True)
class Server:
    """One `server` line of the upstream."""

    address: str
    """host:port of one node of an arm."""
    color: str
    """The arm the node belongs to."""
    weight: int
    """Share of traffic (0-100); 0 renders as `backup`, the idle arm nginx falls back to."""


def weights_for(active: str, canary: int | None = None) -> dict[str, int]:
    """The weights the pointer implies: 100 for the active colour, or `canary` in a canary step."""
    idle = "green" if active == "blue" else "blue"
    if canary is None or canary >= 100:
        return {active: 100, idle: 0}
    return {active: canary, idle: 100 - canary}


def servers_for(nodes: Mapping[str, Sequence[str]], weights: Mapping[str, int]) -> list[Server]:
    """Each arm's nodes with the arm's weight, blue first."""
    order = sorted(nodes)  # a stable order keeps the flip diff to the weights alone
    return [Server(addr, color, weights.get(color, 0)) for color in order for addr in nodes[color]]


def render_upstream(name: str, servers: Sequence[Server], keepalive: int = 32) -> str:
    """The upstream block: weighted servers for arms taking traffic, `backup` for the idle arm."""
    if not any(s.weight > 0 for s in servers):
        raise ValueError(f"upstream {name} has no server with a weight above 0")
    lines = [f"upstream {_token(name)} {{"]
    for s in servers:
        if s.weight > 0:
            lines.append(
                f"    server {_token(s.address)} weight={int(s.weight)} "
                f"max_fails=1 fail_timeout=2s;  # {s.color}"
            )
        else:
            lines.append(f"    server {_token(s.address)} backup;  # {s.color} (idle)")
    lines.append(f"    keepalive {int(keepalive)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def generation(text: str) -> str:
    """A short fingerprint of a rendered config; the edge answers with it so a probe can tell which
    config is serving (nginx can keep the old one while `nginx -s reload` returns 0)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def render_local(
    *,
    app: str,
    run_dir: str,
    listen: str,
    servers: Sequence[Server],
    active_color: str,
) -> str:
    """The whole nginx.conf of the local edge; `run_dir` is the nginx prefix (-p)."""
    upstream_name = f"bluegreen_{app.replace('-', '_')}"
    upstream = render_upstream(upstream_name, servers)
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
        '"upstream":"$upstream_addr","upstream_time":"$upstream_response_time",'
        '"color":"$upstream_http_x_bluegreen_color","version":"$upstream_http_x_bluegreen_version"}}';
    access_log {_token(run_dir)}/access.log bluegreen;
    keepalive_timeout 30s;

{_indent(upstream)}
    server {{
        listen {_token(listen)};
        location / {{
            proxy_pass http://{upstream_name};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            # An arm that refuses or resets is retried on the other server, so an arm restarting
            # during a flip costs a retry, not a failed request. Writes are never retried.
            proxy_next_upstream error timeout http_502 http_503;
            proxy_connect_timeout 1s;
            add_header X-Bluegreen-Edge "{_token(active_color)}" always;
            add_header X-Bluegreen-Edge-Generation "@GENERATION@" always;
        }}
    }}
}}
"""
    return body.replace("@GENERATION@", generation(body))


def _indent(text: str) -> str:
    return "".join("    " + line + "\n" if line else "\n" for line in text.splitlines())
