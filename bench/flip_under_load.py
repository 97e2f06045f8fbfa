"""Flip blue -> green and back five times under 500 requests/s through nginx; print what broke.

For each client kind (see bench/loadgen.py) the failed requests; for each flip the wall time of
`pulumi up -s live` (with the policy pack) and the time from the command's start to the first
response from the new colour; next to them a no-op `pulumi preview -s live`, the engine's floor.

    .venv/bin/python -m bench.flip_under_load [--rate 500] [--flips 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time

from bench.loadgen import Client, run
from cutover.workspace import Workspace
from tests.support.sandbox import make_project


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--flips", type=int, default=5, help="round trips blue->green->blue")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(tmp, policy=True)
        try:
            project.up_all(active="blue")
            port = project.ports["live"]
            clients = [
                Client(k, "127.0.0.1", port) for k in ("new", "keepalive-retry", "keepalive")
            ]
            stop = asyncio.Event()
            loop = asyncio.new_event_loop()
            load = threading.Thread(
                target=lambda: loop.run_until_complete(run(clients, args.rate, stop)), daemon=True
            )
            load.start()
            time.sleep(2)  # steady state before the first flip
            walls, firsts = [], []
            for i in range(args.flips * 2):
                target = "green" if i % 2 == 0 else "blue"
                start = time.perf_counter()
                project.ws.config_set("live", "bluegreen:activeColor", target)
                project.ws.up("live")
                walls.append(time.perf_counter() - start)
                seen = [
                    r.start + r.seconds - start
                    for c in clients
                    for r in list(c.results)
                    if r.color == target and r.start >= start - 1
                ]
                firsts.append(min(seen) if seen else float("nan"))
                time.sleep(1)
            loop.call_soon_threadsafe(stop.set)
            load.join(timeout=30)
            bare = Workspace(project_dir=project.dir, env=project.ws.env)
            floor = []
            for _ in range(3):
                start = time.perf_counter()
                bare.preview("live")
                floor.append(time.perf_counter() - start)
        finally:
            left = project.teardown()
    sent = sum(len(c.results) for c in clients)
    elapsed = max(r.start for c in clients for r in c.results) - min(
        r.start for c in clients for r in c.results
    )
    print(
        f"load: {sent} requests in {elapsed:.0f} s ({sent / elapsed:.0f}/s), {args.flips * 2} flips"
    )
    for c in clients:
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(c.errors().items()))
        print(f"  {c.kind:<16} {len(c.results):>6} requests  {c.failures():>4} failed  {detail}")
    print(
        f"pulumi up -s live (flip, policy pack): median {statistics.median(walls):.2f} s, "
        f"max {max(walls):.2f} s"
    )
    print(
        f"command start -> first answer from the new colour: median {statistics.median(firsts):.2f}"
        f" s, max {max(firsts):.2f} s"
    )
    print(
        f"pulumi preview -s live, no change (engine floor): median {statistics.median(floor):.2f} s"
    )
    if left:
        print(f"warning: teardown left {left}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
