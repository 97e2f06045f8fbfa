"""Flip the live edge between blue and green (10 flips by default) under 500 requests/s through
nginx; print what broke, and how fast traffic moved.

For each client kind (see bench/loadgen.py: `new`, `keepalive-retry`, `keepalive`,
`keepalive-post`) the requests sent and the failed ones by kind of error. For each flip:
- the wall time of `pulumi up -s live` (with the policy pack);
- the time from the edge writing the new state to the first answer from the new colour. The write
  moment is `writtenAt` in `<live run dir>/switch.json` where the edge keeps one (a switch without
  reload), else the mtime of `<live run dir>/nginx.conf` (the reload edge writes it, then reloads);
  the answer is the load generator's, its perf_counter stamps put on the wall clock with a
  time.time()/perf_counter() pair taken as the flip starts. The marker used is printed.
- the time from the command's start to that first answer.
Next to them a no-op `pulumi preview -s live`, the engine's floor.

With `--baseline REF` the same run is made first against the project as it was at git ref REF
(bench/baseline.py; the load generator is always this tree's), then against the working tree,
and the figures are printed side by side.

    .venv/bin/python -m bench.flip_under_load [--rate 500] [--flips 10] [--baseline REF]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

from bench import baseline
from bench.loadgen import KINDS, Client, run
from bluegreen.config import RUN_ROOT
from cutover.workspace import Workspace
from tests.support.sandbox import LocalProject, make_project

SWITCH = "switch.json"
CONF = "nginx.conf"


@dataclass
class Side:
    clients: list[Client]
    flips: int = 0
    walls: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)
    """command start -> first answer from the new colour, s"""
    moves: list[float] = field(default_factory=list)
    """edge's write of the new state -> first answer from the new colour, s"""
    markers: list[str] = field(default_factory=list)
    renames: list[float] = field(default_factory=list)
    """reload edge: nginx.conf's ctime (its rename into place) minus its mtime, s"""
    floor: list[float] = field(default_factory=list)


def written_at(run_dir: str) -> tuple[float, str]:
    """When the edge wrote the state now serving (epoch seconds), and which marker says so."""
    try:
        with open(os.path.join(run_dir, SWITCH)) as f:
            state = json.load(f)
    except FileNotFoundError:
        return os.stat(os.path.join(run_dir, CONF)).st_mtime, f"{CONF} mtime"
    except (OSError, ValueError) as exc:
        return math.nan, f"{SWITCH} unreadable ({type(exc).__name__})"
    at = state.get("writtenAt") if isinstance(state, dict) else None
    if not isinstance(at, (int, float)):
        return math.nan, f"{SWITCH} without writtenAt"
    return float(at), f"{SWITCH} writtenAt"


def flips(project: LocalProject, side: Side, n: int) -> None:
    run_dir = os.path.join(project.dir, RUN_ROOT, "live")
    for i in range(n):
        target = "green" if i % 2 == 0 else "blue"
        # perf_counter (the load generator's stamps) -> wall clock (the write markers)
        wall0, perf0 = time.time(), time.perf_counter()
        start = time.perf_counter()
        project.ws.config_set("live", "bluegreen:activeColor", target)
        project.ws.up("live")
        side.walls.append(time.perf_counter() - start)
        side.flips += 1
        time.sleep(0.5)  # let in-flight requests finish before reading the answers
        # The previous flip's target is the other colour: any answer from `target` ending after
        # this command started comes from this flip's switch.
        ends = [
            r.start + r.seconds
            for c in side.clients
            for r in list(c.results)
            if r.color == target and r.start + r.seconds >= start
        ]
        first = min(ends) if ends else math.nan
        side.firsts.append(first - start)
        at, marker = written_at(run_dir)
        side.moves.append(wall0 + (first - perf0) - at)
        side.markers.append(marker)
        if marker == f"{CONF} mtime":
            # os.replace keeps the mtime of the text written before `nginx -t`; the ctime is the
            # rename, just before the reload.
            st = os.stat(os.path.join(run_dir, CONF))
            side.renames.append(st.st_ctime - st.st_mtime)
        time.sleep(0.5)


def measure(root: str, rate: float, n: int) -> Side:
    side = Side(clients=[])
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(tmp, policy=True, root=root)
        loop = stop = load = None
        try:
            project.up_all(active="blue")
            port = project.ports["live"]
            side.clients = [Client(k, "127.0.0.1", port) for k in KINDS]
            stop = asyncio.Event()
            loop = asyncio.new_event_loop()
            load = threading.Thread(
                target=lambda: loop.run_until_complete(run(side.clients, rate, stop)), daemon=True
            )
            load.start()
            time.sleep(2)  # steady state before the first flip
            flips(project, side, n)
            loop.call_soon_threadsafe(stop.set)
            load.join(timeout=30)
            bare = Workspace(project_dir=project.dir, env=project.ws.env)
            for _ in range(3):
                start = time.perf_counter()
                bare.preview("live")
                side.floor.append(time.perf_counter() - start)
        finally:
            if load is not None and load.is_alive():  # stop the load before the edge goes
                loop.call_soon_threadsafe(stop.set)
                load.join(timeout=30)
            if loop is not None and not (load is not None and load.is_alive()):
                loop.close()
            left = project.teardown()
    if left:
        print(f"warning: teardown left {left}", file=sys.stderr)
    return side


def _stats(xs: list[float], unit: float, fmt: str) -> tuple[str, str]:
    ok = [x for x in xs if not math.isnan(x)]
    if not ok:
        return "n/a", "n/a"
    missing = f" ({len(xs) - len(ok)} n/a)" if len(ok) < len(xs) else ""
    return (
        fmt.format(statistics.median(ok) * unit) + missing,
        fmt.format(max(ok) * unit),
    )


def _line(text: str) -> None:
    print(text.rstrip())


def _marker(s: Side) -> str:
    text = ", ".join(sorted(set(s.markers))) or "n/a"
    if s.renames:
        text += f" (renamed +{statistics.median(s.renames) * 1000:.1f} ms later)"
    return text


def report(rate: float, n: int, sides: list[tuple[str, Side]]) -> None:
    print(
        f"load: {len(KINDS)} client kinds round-robin at {rate:.0f} requests/s in all, "
        f"{n} flips (blue->green, green->blue, ...)"
    )
    for label, s in sides:
        starts = [r.start for c in s.clients for r in c.results]
        sent = len(starts)
        elapsed = (max(starts) - min(starts)) if sent > 1 else math.nan
        print(
            f"  {label}: {sent} requests in {elapsed:.0f} s ({sent / elapsed:.0f}/s), "
            f"{s.flips} flips"
        )
    width = max(len(label) for label, _ in sides)
    print()
    print(f"{'kind':<16} {'':<{width}} {'requests':>8} {'failed':>6}  error kinds")
    for kind in KINDS:
        for j, (label, s) in enumerate(sides):
            c = next(c for c in s.clients if c.kind == kind)
            detail = ", ".join(f"{k}: {v}" for k, v in sorted(c.errors().items())) or "-"
            name = kind if j == 0 else ""
            print(f"{name:<16} {label:<{width}} {len(c.results):>8} {c.failures():>6}  {detail}")
    print()
    col = max(22, width + 2)
    if any(s.renames for _, s in sides):
        col = max(col, 42)
    lead = 58
    _line(f"{'':<{lead}}" + "".join(f"{label:<{col}}" for label, _ in sides))

    def row(title: str, pairs: list[tuple[str, str]]) -> None:
        for k, what in enumerate(("median", "max")):
            _line(
                f"{title if k == 0 else '':<{lead - 7}}{what:<7}"
                + "".join(f"{p[k]:<{col}}" for p in pairs)
            )

    row(
        "pulumi up -s live (flip, policy pack)",
        [_stats(s.walls, 1, "{:.2f} s") for _, s in sides],
    )
    row(
        "edge writes new state -> first new-colour answer",
        [_stats(s.moves, 1000, "{:.1f} ms") for _, s in sides],
    )
    _line(f"{'  write marker':<{lead}}" + "".join(f"{_marker(s):<{col}}" for _, s in sides))
    row(
        "command start -> first new-colour answer",
        [_stats(s.firsts, 1, "{:.2f} s") for _, s in sides],
    )
    _line(
        f"{'pulumi preview -s live, no change (floor)':<{lead - 7}}{'median':<7}"
        + "".join(
            f"{(f'{statistics.median(s.floor):.2f} s' if s.floor else 'n/a'):<{col}}"
            for _, s in sides
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=500, help="requests/s in all")
    parser.add_argument("--flips", type=int, default=10, help="flips, alternately to green, blue")
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also measure the project at this git ref, first, and print it next to this tree",
    )
    args = parser.parse_args()
    sides = baseline.measure(args.baseline, lambda root: measure(root, args.rate, args.flips))
    report(args.rate, args.flips, sides)
    return 0


if __name__ == "__main__":
    sys.exit(main())
