"""The edge's cache and backpressure through `pulumi up -s live`, as users configure them."""

from __future__ import annotations

import time

from bluegreen import probe


def get(project, path: str = "/", **kw) -> probe.Answer:
    return probe.request(project.edge_url.rstrip("/") + path, **kw)


def test_the_flip_warms_the_new_colours_cache_before_traffic_moves(bare_project):
    project = bare_project
    project.ws.config_set("live", "bluegreen:cache", "true")
    project.ws.config_set("live", "bluegreen:cacheWarmPaths", '["/assets/app.js"]')
    project.up_all(active="blue")
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


def test_backpressure_during_the_hold_only(bare_project):
    project = bare_project
    for key, value in {"rateLimit": "2", "limitWhen": "hold", "limitHoldSeconds": "4"}.items():
        project.ws.config_set("live", f"bluegreen:{key}", value)
    project.up_all(active="blue")
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    project.ws.up("live")
    during = [get(project) for _ in range(10)]
    refused = [a for a in during if a.status == 429]
    assert len(refused) >= 5, [a.status for a in during]
    assert {a.headers["retry-after"] for a in refused} == {"1"}
    time.sleep(4.5)
    assert [get(project).status for _ in range(10)] == [200] * 10
    # An update that moves no traffic does not start a new hold.
    project.ws.config_set("live", "bluegreen:maintenanceBanner", "hello")
    project.ws.up("live")
    assert [get(project).status for _ in range(10)] == [200] * 10
