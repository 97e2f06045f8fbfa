"""The local edge's nginx.conf, assembled from one fragment per feature.

`render_local` is the whole file, and the reference for the NixOS edge module
(nixos/modules/edge-node/), which states the same in the nixpkgs nginx module's shape; the
vocabulary both share (the groups, switch.js and its variables, the edge's own documents) is
bluegreen/nginx.py's. Each fragment is a function of this package returning its text, "" when
its feature is off: http_context.py (the main context, temp paths, the access log, keep-alive,
switch.js, the arms' groups), limits.py, caching.py, shadowing.py, queueing.py (the maintenance
queue), server_block.py (listen, the edge's own documents, maintenance, `location /`), and
layout.py says where the files are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bluegreen.config import Backpressure, Cache, Queue, Shadow
from bluegreen.nginx import STICKY_MAPS, indent, word
from bluegreen.nginx_conf.caching import cache_directives, cache_zone
from bluegreen.nginx_conf.http_context import (
    GENERATION,
    access_log,
    arm_groups,
    heading,
    keepalive,
    main_context,
    switch_script,
    temp_paths,
)
from bluegreen.nginx_conf.layout import served_dir
from bluegreen.nginx_conf.limits import limit_directives, limit_zones
from bluegreen.nginx_conf.queueing import queue_divert, queue_group, queue_locations, queue_zones
from bluegreen.nginx_conf.server_block import arms_location, server
from bluegreen.nginx_conf.shadowing import mirror, shadow_groups, shadow_location
from bluegreen.switch import generation


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
    run = word(run_dir)
    serve = word(served_dir(run_dir, as_root))
    # On the way to the arms: the limits, the mirror of shadow traffic, the cache.
    on_the_way = limit_directives(backpressure) + mirror(shadow) + cache_directives(cache)
    http = [
        temp_paths(serve),
        access_log(run),
        keepalive(safe_reload),
        "\n",
        switch_script(run, serve),
        indent(STICKY_MAPS),
        "\n",
        # What the features that are on need at the http level, then the upstream groups.
        limit_zones(backpressure),
        cache_zone(serve, cache),
        queue_zones(queue),
        arm_groups(app, nodes),
        shadow_groups(app, nodes, shadow),
        queue_group(app, queue, queue_listen),
        "\n",
        server(
            listen,
            arms_location(app, diverts=queue_divert(queue), directives=on_the_way),
            shadow_location(app, run, shadow),
            queue_locations(app, queue),
        ),
    ]
    body = heading() + main_context(run, js_module, as_root) + "http {\n" + "".join(http) + "}\n"
    return body.replace(GENERATION, generation(body))


def conf_generation(text: str) -> str:
    """The fingerprint `render_local` wrote into `text` (`$bluegreen_conf`), which the switch state
    written for it must carry."""
    return text.split('map $pid $bluegreen_conf { default "', 1)[1].split('"', 1)[0]
