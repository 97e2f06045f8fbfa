"""Several edges in front of the same two arms (bluegreen:edges): three nginx edges on loopback
addresses of their own, standing in for sites, moved by one update of the live stack, each
confirmed; an edge that cannot be reached refuses a flip before any edge moves; and
`bluegreen flip` walking the edges in waves (bluegreen:waves) with one verdict."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

from cutover.flip import flip
from cutover.results import Outcome
from tests.support.operating import flip_log, operator
from tests.support.sandbox import LocalProject
from tests.support.watcher import SiteUsers

SITES = {"site-a": "127.0.0.1", "site-b": "127.0.0.2", "site-c": "127.0.0.3"}


def site_urls(project: LocalProject) -> dict[str, str]:
    return {site: f"http://{host}:{project.ports['live']}/" for site, host in SITES.items()}


def served(project: LocalProject) -> dict[str, set[str | None]]:
    """Which colours answer users' requests at each site."""
    return {site: set(project.colors(10, url)) for site, url in site_urls(project).items()}


def with_edges(project: LocalProject, waves: list[list[str]] | None = None) -> None:
    project.ws.config_set("live", "bluegreen:edges", json.dumps(SITES))
    if waves:
        project.ws.config_set("live", "bluegreen:waves", json.dumps(waves))


def test_several_edges_move_in_one_update_or_in_waves_with_one_verdict(project):
    """One deploy for the whole story (each phase needs the last one's edges)."""
    with_edges(project)
    project.up_all(active="blue")
    assert served(project) == {site: {"blue"} for site in SITES}
    outputs = project.ws.outputs("live")
    assert {site: e["url"] for site, e in outputs["edges"].items()} == site_urls(project)
    assert outputs["metrics"]["paths"] == [
        os.path.join(project.dir, ".bluegreen", "live", "access.log"),
        os.path.join(project.dir, ".bluegreen", "live-site-b", "access.log"),
        os.path.join(project.dir, ".bluegreen", "live-site-c", "access.log"),
    ]

    # A bare `pulumi up` (CI) moves every edge in one update; the preview shows each edge.
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    preview = project.ws.preview("live", diff=True).stdout
    assert preview.count("pulumi-python:dynamic/local:NginxEdge: (update)") == 3, preview
    project.ws.up("live")
    assert served(project) == {site: {"green"} for site in SITES}

    # site-c's nginx goes away: moving traffic now would leave it behind, so nothing moves.
    pid_file = os.path.join(project.dir, ".bluegreen", "live-site-c", "nginx.pid")
    with open(pid_file) as f:
        os.kill(int(f.read().split()[0]), signal.SIGTERM)
    project.ws.config_set("live", "bluegreen:activeColor", "blue")
    refused = project.ws.run(["up", "--stack", "live", "--yes", "--skip-preview"], check=False)
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "the edge site-c (127.0.0.3:" in said and "cannot be reached" in said, said
    assert "(nothing was changed)" in said
    alive = {site: colors for site, colors in served(project).items() if site != "site-c"}
    assert alive == {"site-a": {"green"}, "site-b": {"green"}}

    # An update that moves nothing brings it back; `bluegreen status` asks each edge.
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    project.ws.up("live")
    assert served(project) == {site: {"green"} for site in SITES}
    with project.bluegreen("status") as status:
        out, _ = status.communicate(timeout=60)
    for site, url in site_urls(project).items():
        assert f"edge {site} {url}: green (v2)" in out, out

    # `bluegreen flip` in waves: one wave at a time, each held, one record with each verdict.
    project.ws.config_set("live", "bluegreen:waves", json.dumps([["site-a"], ["site-b", "site-c"]]))
    op, said = operator(project)
    with SiteUsers(site_urls(project)) as users:
        ended = flip(op, "blue", hold_s=3, interval=0.5)
    assert ended.outcome is Outcome.DONE, said
    assert not users.failures, users.failures[:5]
    assert served(project) == {site: {"blue"} for site in SITES}
    assert "wave 1 of 2 (site-a): blue now takes their traffic; holding 3 s" in said
    assert "wave 2 of 2 (site-b, site-c): blue now takes their traffic; holding 3 s" in said
    # site-b moved a whole hold after site-a: wave 2 waits for wave 1's verdict.
    assert users.first["site-b", "blue"] - users.first["site-a", "blue"] > 2.5
    evidence = project.ws.outputs("live")["evidence"]
    records = [r for r in evidence if r.get("flip") == flip_log(project)[-1]["id"]]
    assert len(records) == 1, evidence
    assert [(w["edges"], w["verdict"]) for w in records[0]["waves"]] == [
        (["site-a"], "held"),
        (["site-b", "site-c"], "held"),
    ]
    assert flip_log(project)[-1]["waves"] == [["site-a"], ["site-b", "site-c"]]

    # Green dies once wave 2 has moved to it: every edge goes back to blue.
    green_pid = int(
        open(os.path.join(project.dir, ".bluegreen", "green", "green.pid")).read().split()[0]
    )
    op, said = operator(project)  # a new command: it reads what the edges serve now
    killed: list[float] = []

    def kill_green_in_wave_2() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not killed:
            if "wave 2 of 2 (site-b, site-c): green now takes their traffic; holding 3 s" in said:
                os.killpg(green_pid, signal.SIGKILL)
                killed.append(time.monotonic())
            time.sleep(0.05)

    killer = threading.Thread(target=kill_green_in_wave_2)
    killer.start()
    with SiteUsers(site_urls(project)):
        ended = flip(op, "green", hold_s=3, interval=0.5)
    killer.join()
    assert killed, said
    assert ended.outcome is Outcome.ROLLED_BACK, said
    assert served(project) == {site: {"blue"} for site in SITES}
    assert any("during wave 2" in line for line in said), said
