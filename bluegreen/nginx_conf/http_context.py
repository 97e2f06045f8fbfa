"""The local edge's nginx.conf outside its features: the main context, and the head of the http
block (temp paths, the access log, keep-alive, switch.js and its variables, the arms' groups)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bluegreen.nginx import (
    JS_VARIABLES,
    KEEPALIVE_MIN_TIMEOUT,
    SWITCH_JS,
    group_name,
    groups,
    indent,
    render_group,
    word,
)
from bluegreen.nginx_conf.layout import LEASE_DIR, worker_user
from bluegreen.switch import generation

GENERATION = "@GENERATION@"
"""Where the config's own fingerprint goes (`$bluegreen_conf`), once the rest is rendered."""


def heading() -> str:
    """What the file is, for whoever opens it, and the switch.js it was rendered for."""
    return f"""\
# Rendered by bluegreen (components/edge.py); changes here are overwritten by `pulumi up -s live`.
# Which colour takes traffic is not in this file: switch.js reads it per request from switch.json.
# switch.js {generation(SWITCH_JS)}
"""


def main_context(run: str, js_module: str, as_root: bool) -> str:
    """The njs module, the workers (never root: they parse every client's request) and the
    master's own files in the run dir."""
    user = "user {} {};\n".format(*map(word, worker_user())) if as_root else ""
    return f"""\
load_module {word(js_module)};
{user}worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 4096; }}
"""


def temp_paths(serve: str) -> str:
    """nginx's temp directories, where the workers may write."""
    return "".join(
        f"    {kind}_temp_path {serve}/tmp/{folder};\n"
        for kind, folder in (
            ("client_body", "body"),
            ("proxy", "proxy"),
            ("fastcgi", "fastcgi"),
            ("uwsgi", "uwsgi"),
            ("scgi", "scgi"),
        )
    )


def access_log(run: str) -> str:
    """One JSON line a request, which the hold after a flip reads; `probe` marks bluegreen's own
    requests (the confirmation, the warm-up, the queue service's), which it leaves out."""
    return f"""\
    # One JSON line a request: which arm answered, its version, status and timings. The
    # hold-and-watch reads this log.
    log_format bluegreen escape=json '{{"time":"$time_iso8601","method":"$request_method",'
        '"uri":"$uri","status":$status,"request_time":$request_time,'
        '"upstream":"$upstream_addr","upstream_status":"$upstream_status",'
        '"upstream_time":"$upstream_response_time",'
        '"color":"$upstream_http_x_bluegreen_color","version":"$upstream_http_x_bluegreen_version",'
        '"probe":"$bluegreen_probe"}}';
    access_log {run}/access.log bluegreen;
"""


def keepalive(safe_reload: bool) -> str:
    """Clients' keep-alive; where nginx can, a reload keeps kept-alive clients
    (`SAFE_RELOAD_SINCE`)."""
    safe = f"    keepalive_min_timeout {KEEPALIVE_MIN_TIMEOUT};\n" if safe_reload else ""
    return "    keepalive_timeout 30s;\n" + safe


def switch_script(run: str, serve: str) -> str:
    """switch.js, the variables it sets, and where it reads the switch state and the lease
    stamps; `$bluegreen_conf` is this config's fingerprint, which the state must carry."""
    js_sets = "".join(f"    js_set ${var} bluegreen.{fn};\n" for var, fn in JS_VARIABLES.items())
    return f"""\
    js_import bluegreen from {run}/switch.js;
{js_sets}    map $pid $bluegreen_state {{ default "{serve}/switch.json"; }}
    map $pid $bluegreen_lease_dir {{ default "{serve}/{LEASE_DIR}"; }}
    map $pid $bluegreen_conf {{ default "{GENERATION}"; }}
"""


def arm_groups(app: str, nodes: Mapping[str, Sequence[str]]) -> str:
    """One upstream group per colour (`bluegreen.nginx.groups`)."""
    return "".join(
        indent(render_group(group_name(app, color), servers))
        for color, servers in groups(nodes).items()
    )
