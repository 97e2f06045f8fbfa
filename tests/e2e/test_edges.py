"""Several edges in front of the same two arms (bluegreen:edges): three nginx edges on loopback
addresses of their own, standing in for sites, behind one name in the local Knot DNS, moved by
one update of the live stack, each confirmed and all serving one writer lease; an edge killed
under load costs users who resolve the name nothing, and leaves the name's answer within the
DNS health agent's bound; an edge that cannot be reached refuses a flip before any edge moves;
and `bluegreen flip` walks the edges in waves (bluegreen:waves) with one verdict."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

from bluegreen import probe
from bluegreen.rfc2136 import lookup
from bluegreen.switch import LEASE_PATH
from cutover.flip import flip
from cutover.results import Outcome
from tests.support.operating import flip_log, operator
from tests.support.sandbox import LocalProject, kill_at_once
from tests.support.watcher import ResolvingUsers, SiteUsers

NAME = "shop.bluegreen.test"
BOUND_S = 4.5
"""The DNS health agent's bound from an edge's failure to its address leaving the answer:
2 failed checks 1 s apart, a 0.5 s timeout, one interval to act (agents/edge/dns_health.py)."""

SITES = {"site-a": "127.0.0.1", "site-b": "127.0.0.2", "site-c": "127.0.0.3"}


def site_urls(project: LocalProject) -> dict[str, str]:
    return {site: f"http://{host}:{project.ports['live']}/" for site, host in SITES.items()}


def served(project: LocalProject) -> dict[str, set[str | None]]:
    """Which colours answer users' requests at each site."""
    return {site: set(project.colors(10, url)) for site, url in site_urls(project).items()}


def leases(project: LocalProject) -> dict[str, dict]:
    """The writer lease each site serves."""
    return {
        site: json.loads(probe.request(url.rstrip("/") + LEASE_PATH).body or b"{}")
        for site, url in site_urls(project).items()
    }


class LeaseSamples:
    """Reads every site's lease over and over while a flip runs: who may write, at each moment."""

    def __init__(self, project: LocalProject) -> None:
        self.project, self.samples = project, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(leases(self.project))
            time.sleep(0.05)

    def holders(self) -> list[set[str]]:
        """At each sample, the colours whose writers may run (holder, and the handover past)."""
        return [
            {
                lease["holder"]
                for lease in sample.values()
                if lease.get("holder") and lease["now"] >= lease["since"] + lease["handover"]
            }
            for sample in self.samples
        ]

    def __enter__(self) -> LeaseSamples:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def answer_without(host: str, server: str, within: float) -> float | None:
    """Seconds until the live name's answer leaves out `host`, or None within `within`."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if host not in lookup(NAME, server)[0]:
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def with_edges(project: LocalProject, waves: list[list[str]] | None = None) -> None:
    project.ws.config_set("live", "bluegreen:edges", json.dumps(SITES))
    if waves:
        project.ws.config_set("live", "bluegreen:waves", json.dumps(waves))


def test_several_edges_move_in_one_update_or_in_waves_with_one_verdict(dns_project):
    """One deploy for the whole story (each phase needs the last one's edges)."""
    project = dns_project
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
    # One name answers every edge, with the short TTL.
    assert lookup(NAME, project.server) == (sorted(SITES.values()), 30)
    # The health agent that keeps it so has its TSIG key in an owner-only file, never in argv.
    run_dir = os.path.join(project.dir, ".bluegreen", "live")
    assert os.stat(os.path.join(run_dir, "dns-health.key")).st_mode & 0o777 == 0o600
    with (
        open(os.path.join(run_dir, "dns-health.pid")) as f,
        open(f"/proc/{f.read().split()[0]}/cmdline", "rb") as cmdline,
    ):
        assert project.tsig_secret.encode() not in cmdline.read()

    # A bare `pulumi up` (CI) moves every edge in one update; the preview shows each edge.
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    preview = project.ws.preview("live", diff=True).stdout
    changed = sorted(re.findall(r"([\w:/.-]+): \((?:update|create|replace|delete)", preview))
    # Each edge's switch, the writer lease every edge serves, the evidence record: nothing else.
    assert changed == [
        "bluegreen:index:Edge",
        "pulumi-python:dynamic/bluegreen:FlipRecord",
        "pulumi-python:dynamic/local:LeaseStamp",
        *["pulumi-python:dynamic/local:NginxEdge"] * 3,
    ], preview
    project.ws.up("live")
    assert served(project) == {site: {"green"} for site in SITES}
    # Every edge serves one writer lease: the same holder and fence, its handover started at
    # once on all of them, when all of them served green.
    served_leases = leases(project)
    assert {(x["holder"], x["fence"]) for x in served_leases.values()} == {("green", 2)}
    stamps = [x["since"] for x in served_leases.values()]
    assert max(stamps) - min(stamps) < 0.5, served_leases

    # site-c's nginx dies under load: users who resolve the name go on to the next address,
    # and the DNS health agent takes site-c out of the answer within its bound.
    with ResolvingUsers(NAME, project.server, project.ports["live"]) as users:
        time.sleep(1)
        kill_at_once(os.path.join(project.dir, ".bluegreen", "live-site-c", "nginx.pid"))
        left = answer_without(SITES["site-c"], project.server, BOUND_S + 2)
        time.sleep(1)
    assert left is not None, lookup(NAME, project.server)
    assert lookup(NAME, project.server) == (sorted(SITES.values())[:2], 30)
    assert not users.failures, users.failures[:5]
    assert users.requests > 100 and set(users.answered) == set(SITES.values()), users.answered

    # Moving traffic now would leave site-c behind, so nothing moves.
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
    back = time.monotonic()
    while SITES["site-c"] not in lookup(NAME, project.server)[0]:
        assert time.monotonic() - back < BOUND_S + 2, "site-c did not come back into the answer"
        time.sleep(0.05)
    with project.bluegreen("status") as status:
        out, _ = status.communicate(timeout=60)
    for site, url in site_urls(project).items():
        assert f"edge {site} {url}: green (v2)" in out, out

    # `bluegreen flip` in waves: one wave at a time, each held, one record with each verdict.
    project.ws.config_set("live", "bluegreen:waves", json.dumps([["site-a"], ["site-b", "site-c"]]))
    op, said = operator(project)
    with (
        SiteUsers(site_urls(project)) as users,
        ResolvingUsers(NAME, project.server, project.ports["live"]) as resolving,
        LeaseSamples(project) as lease,
    ):
        ended = flip(op, "blue", hold_s=3, interval=0.5)
    assert ended.outcome is Outcome.DONE, said
    assert not users.failures, users.failures[:5]
    assert not resolving.failures and resolving.requests > 100, resolving.failures[:5]
    # Never two holders: between the waves nobody may write, and blue's writers start only
    # when every edge serves blue (one fence on all of them, stamped at once).
    holders = lease.holders()
    assert all(len(h) <= 1 for h in holders), [h for h in holders if len(h) > 1][:3]
    between = [
        s for s in lease.samples if all("fence" in x and x["holder"] is None for x in s.values())
    ]
    assert between, "the lease was never held by nobody between the waves"
    assert {(x["holder"], x["fence"]) for x in leases(project).values()} == {("blue", 4)}
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
    # Wave 2's edges were judged each on its own traffic as well as together.
    assert set(records[0]["waves"][1]["perEdge"]) == {"site-b", "site-c"}
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
