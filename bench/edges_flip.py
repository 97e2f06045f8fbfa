"""A flip with 1, 3 and 9 edges (bluegreen:edges on the local platform, one nginx per loopback
address), under load at every edge: users on fresh connections (as curl makes them), each site
its own. For each count it prints, side by side:

- the flip as CI runs it, a bare `pulumi up -s live` moving every edge in one update, each
  confirmed: its wall time, requests and failed requests;
- `bluegreen flip` in two waves (the first site, then the rest; a 2 s hold each): its wall time,
  requests and failed requests.

    .venv/bin/python -m bench.edges_flip [--counts 1,3,9] [--hold 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from cutover.flip import flip
from cutover.operator import Operator
from cutover.results import Outcome
from tests.support.sandbox import LocalProject, make_project
from tests.support.watcher import SiteUsers


def measure(project: LocalProject, count: int, hold: float) -> dict:
    sites = {f"site-{i + 1}": f"127.0.0.{i + 1}" for i in range(count)}
    if count > 1:
        project.ws.config_set("live", "bluegreen:edges", json.dumps(sites))
        waves = [list(sites)[:1], list(sites)[1:]]
        project.ws.config_set("live", "bluegreen:waves", json.dumps(waves))
    project.up_all(active="blue")
    urls = {site: f"http://{host}:{project.ports['live']}/" for site, host in sites.items()}
    found: dict = {"edges": count}
    with SiteUsers(urls, pause=0.01) as users:
        start = time.perf_counter()
        project.ws.config_set("live", "bluegreen:activeColor", "green")
        project.ws.up("live")
        found["update"] = time.perf_counter() - start
    found["updateRequests"], found["updateFailed"] = users.requests, len(users.failures)
    with SiteUsers(urls, pause=0.01) as users:
        start = time.perf_counter()
        op = Operator(project.ws, out=lambda _: None)
        ended = flip(op, "blue", hold_s=hold, interval=0.5)
        found["waves"] = time.perf_counter() - start
    if ended.outcome is not Outcome.DONE:
        raise SystemExit(f"the flip in waves with {count} edges ended {ended}")
    found["wavesRequests"], found["wavesFailed"] = users.requests, len(users.failures)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--counts", default="1,3,9")
    parser.add_argument("--hold", type=float, default=2.0)
    args = parser.parse_args()
    results = []
    for count in (int(c) for c in args.counts.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            project = make_project(tmp, policy=True)
            try:
                results.append(measure(project, count, args.hold))
            finally:
                left = project.teardown()
            if left:
                print(f"warning: teardown left {left}", file=sys.stderr)
    print("flip blue -> green under load at every edge (users on fresh connections)")
    print(
        f"{'edges':>5}  {'one update':>10}  {'requests':>8}  {'failed':>6}  "
        f"{'in waves':>8}  {'requests':>8}  {'failed':>6}"
    )
    for r in results:
        print(
            f"{r['edges']:>5}  {r['update']:>9.2f}s  {r['updateRequests']:>8}  "
            f"{r['updateFailed']:>6}  {r['waves']:>7.2f}s  {r['wavesRequests']:>8}  "
            f"{r['wavesFailed']:>6}"
        )
    print(
        f"waves: the first edge, then the rest, each held {args.hold:g} s (with 1 edge, one wave)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
