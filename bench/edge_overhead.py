"""Edge overhead: p50/p95 of GET / through nginx next to the arm's direct endpoint, kept-alive,
sequential (one request in flight), on loopback.

    .venv/bin/python -m bench.edge_overhead [--requests 3000]
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import time

from bluegreen.probe import percentile
from tests.support.sandbox import make_project


def sample(port: int, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    out = []
    for _ in range(n):
        start = time.perf_counter()
        conn.request("GET", "/")
        conn.getresponse().read()
        out.append((time.perf_counter() - start) * 1000)
    conn.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    n = parser.parse_args().requests
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(tmp, policy=False)
        try:
            project.up_all(active="blue")
            sample(project.ports["live"], 200)  # warm both paths
            sample(project.ports["blue"], 200)
            edge = sample(project.ports["live"], n)
            direct = sample(project.ports["blue"], n)
        finally:
            left = project.teardown()
    for label, xs in (("through nginx", edge), ("blue direct", direct)):
        p50, p95 = percentile(xs, 50), percentile(xs, 95)
        print(f"{label:<14} p50 {p50:.3f} ms   p95 {p95:.3f} ms   ({n} requests)")
    d50 = percentile(edge, 50) - percentile(direct, 50)
    d95 = percentile(edge, 95) - percentile(direct, 95)
    print(f"edge overhead: p50 +{d50:.3f} ms, p95 +{d95:.3f} ms")
    if left:
        print(f"warning: teardown left {left}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
