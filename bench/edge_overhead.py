"""Edge overhead: p50/p95 of GET / through nginx next to the arm's direct endpoint, kept-alive,
sequential (one request in flight), on loopback, the two paths alternating in blocks.

With `--baseline REF` the same measurement runs first against the project as it was at git ref
REF (bench/baseline.py), then against the working tree, and the edge's overhead at p95 of the
two is compared: the issue's target is that the per-request choice of arm adds under 0.2 ms.

    .venv/bin/python -m bench.edge_overhead [--requests 3000] [--baseline REF]
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import time

from bench import baseline
from bluegreen.probe import percentile
from tests.support.sandbox import make_project

TARGET_MS = 0.2


BLOCK = 100
"""Requests per block: the two paths alternate in blocks, so that a change in the machine's load
(2 cores, other work alongside) falls on both alike rather than on whichever ran second."""


def sample(conn: http.client.HTTPConnection, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        conn.request("GET", "/")
        conn.getresponse().read()
        out.append((time.perf_counter() - start) * 1000)
    return out


def measure(root: str, n: int) -> tuple[list[float], list[float]]:
    """(through nginx, blue direct) latencies in ms of a sandbox copied from `root`."""
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(tmp, policy=False, root=root)
        try:
            project.up_all(active="blue")
            edge_conn, direct_conn = (
                http.client.HTTPConnection("127.0.0.1", project.ports[k], timeout=5)
                for k in ("live", "blue")
            )
            sample(edge_conn, 200)  # warm both paths
            sample(direct_conn, 200)
            edge: list[float] = []
            direct: list[float] = []
            while len(edge) < n:
                edge += sample(edge_conn, min(BLOCK, n - len(edge)))
                direct += sample(direct_conn, min(BLOCK, n - len(direct)))
            edge_conn.close()
            direct_conn.close()
        finally:
            left = project.teardown()
    if left:
        print(f"warning: teardown left {left}", file=sys.stderr)
    return edge, direct


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also measure the project at this git ref, first, and print it next to this tree",
    )
    args = parser.parse_args()
    n = args.requests
    sides = baseline.measure(args.baseline, lambda root: measure(root, n))
    overhead95 = {}
    for label, (edge, direct) in sides:
        print(f"{label}:")
        for name, xs in (("through nginx", edge), ("blue direct", direct)):
            p50, p95 = percentile(xs, 50), percentile(xs, 95)
            print(f"  {name:<14} p50 {p50:.3f} ms   p95 {p95:.3f} ms   ({n} requests)")
        d50 = percentile(edge, 50) - percentile(direct, 50)
        d95 = percentile(edge, 95) - percentile(direct, 95)
        overhead95[label] = d95
        print(f"  edge overhead: p50 {d50:+.3f} ms, p95 {d95:+.3f} ms")
    if len(sides) == 2:
        (before, b95), (after, a95) = overhead95.items()
        delta = a95 - b95
        print(
            f"edge overhead at p95, after minus before: {delta:+.3f} ms "
            f"({a95:+.3f} - {b95:+.3f}; target: under +{TARGET_MS} ms: "
            f"{'met' if delta < TARGET_MS else 'NOT met'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
