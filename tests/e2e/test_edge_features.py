"""The edge's cache and backpressure through `pulumi up -s live`, as users configure them."""

from __future__ import annotations

import concurrent.futures
import json
import os
import stat
import time

from bluegreen import probe
from platforms.local.edge_files import read_state


def get(project, path: str = "/", **kw) -> probe.Answer:
    return probe.request(project.edge_url.rstrip("/") + path, **kw)


def test_the_flip_warms_the_new_colours_cache_before_traffic_moves(bare_project):
    project = bare_project
    project.ws.config_set("live", "bluegreen:cache", "true")
    project.ws.config_set("live", "bluegreen:cacheWarmPaths", '["/assets/app.js"]')
    project.up_all(active="blue")
    token = probe_token(project)
    assert get(project, "/assets/app.js").headers["x-bluegreen-cache"] == "MISS"
    assert get(project, "/assets/app.js").headers["x-bluegreen-cache"] == "HIT"
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    project.ws.up("live")
    first = get(project, "/assets/app.js")
    assert (first.version, first.headers["x-bluegreen-cache"]) == ("v2", "HIT")
    project.ws.config_set("live", "bluegreen:activeColor", "blue")
    project.ws.up("live")  # the rollback: blue's own entry, never green's
    back = get(project, "/assets/app.js")
    assert (back.version, back.headers["x-bluegreen-cache"]) == ("v1", "HIT")
    assert probe_token(project) == token, "the edge's probe token is kept across updates"


def hold_started(run: str, update: concurrent.futures.Future, after: float) -> float:
    """When the limits the switch started with the flip end (epoch seconds), once it has: a
    new end, later than `after`."""
    while not update.done():
        until = ((read_state(run) or {}).get("limits") or {}).get("until") or 0
        if until > max(after, time.time()):
            return until
        time.sleep(0.02)
    update.result()  # the update's own error, if it failed
    raise AssertionError("the update ended and the edge never started a hold's limits")


def probe_token(project) -> str:
    """The edge's probe token: in an owner-only file beside the state, the same as the state's,
    and a secret in the stack's state."""
    run = os.path.join(project.dir, ".bluegreen", "live")
    path = os.path.join(run, "probe.token")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as f:
        token = f.read().strip()
    assert read_state(run)["probe"] == token
    exported = json.dumps(project.ws.export("live"))
    assert token not in exported and '"probeToken": {"4dabf18193072939515e22adb298388d"' in exported
    return token


def test_backpressure_during_the_hold_only(bare_project):
    project = bare_project
    for key, value in {"rateLimit": "2", "limitWhen": "hold", "limitHoldSeconds": "6"}.items():
        project.ws.config_set("live", f"bluegreen:{key}", value)
    project.up_all(active="blue")
    run = os.path.join(project.dir, ".bluegreen", "live")
    first = read_state(run)["limits"]["until"]  # the first deploy's, as traffic began
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    # The burst goes as soon as the edge starts the hold, while the update goes on (confirming,
    # recording): how long the rest of the update takes on a busy machine is not what is tested.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        update = pool.submit(project.ws.up, "live")
        until = hold_started(run, update, after=first)
        during = [get(project) for _ in range(10)]
        burst_ended = time.time()
        update.result()
    assert burst_ended < until, "the burst must fall within the hold to say anything"
    refused = [a for a in during if a.status == 429]
    assert len(refused) >= 5, [a.status for a in during]
    assert {a.headers["retry-after"] for a in refused} == {"1"}
    time.sleep(max(0.0, until - time.time()) + 0.5)
    assert [get(project).status for _ in range(10)] == [200] * 10
    # An update that moves no traffic does not start a new hold.
    project.ws.config_set("live", "bluegreen:maintenanceBanner", "hello")
    project.ws.up("live")
    assert [get(project).status for _ in range(10)] == [200] * 10
