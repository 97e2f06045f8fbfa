"""Writes kept during maintenance, through the real edge: what keeping a write costs the client,
and how fast the kept writes reach the arm once maintenance ends.

A sandbox project on the local platform (real nginx, the real queue service with its SQLite store,
the reference arms), `bluegreen:maintenanceQueue: /orders`:

1. writes open: N keyed POSTs through the edge to the arm (200), kept-alive, one at a time;
2. maintenance on: N keyed POSTs through the edge, kept by the queue service (202): the added
   latency of a queued write is the difference at p50 and p95;
3. maintenance off: the replay, timed from the arm's first replayed write to its last (the soak
   before it is not counted), as intents per second, and checked: every key once, in order.

    .venv/bin/python -m bench.queued_writes [--writes 2000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time

from bluegreen.probe import percentile
from tests.support.sandbox import make_project


def post_all(port: int, n: int, prefix: str, expect: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for i in range(n):
        body = json.dumps({"order": i}).encode()
        headers = {"Idempotency-Key": f"{prefix}-{i}", "Content-Type": "application/json"}
        start = time.perf_counter()
        conn.request("POST", f"/orders/{i}", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        out.append((time.perf_counter() - start) * 1000)
        if resp.status != expect:
            raise SystemExit(f"write {i} answered {resp.status}, expected {expect}")
    conn.close()
    return out


def journal(port: int) -> list[dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/_arm/writes")
    got = json.loads(conn.getresponse().read())
    conn.close()
    return got


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--writes", type=int, default=2000, help="writes per phase (2000)")
    args = cli.parse_args()
    n = args.writes
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(tmp, policy=False)
        try:
            for key, value in {
                "maintenanceQueue": "/orders",
                "maintenanceSoakSeconds": "1",
                # One client sends every write: the per-client limits are not what is measured.
                "maintenanceQueueRate": "10000",
                "maintenanceQueueBurst": "10000",
            }.items():
                project.ws.config_set("live", f"bluegreen:{key}", value)
            project.up_all(active="blue")
            edge, arm = project.ports["live"], project.ports["blue"]
            post_all(edge, 200, "warm-open", 200)
            direct = post_all(edge, n, "open", 200)
            project.ws.config_set("live", "bluegreen:maintenance", "true")
            project.ws.up("live")
            post_all(edge, 200, "warm-kept", 202)
            kept = post_all(edge, n, "kept", 202)
            before = len(journal(arm))
            project.ws.config_set("live", "bluegreen:maintenance", "false")
            project.ws.up("live")
            want = before + 200 + n
            first = last = None
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                seen = len(journal(arm))
                now = time.perf_counter()
                if seen > before and first is None:
                    first = now
                if seen >= want:
                    last = now
                    break
                time.sleep(0.02)
            replayed = journal(arm)[before:]
        finally:
            project.teardown()
    if last is None or first is None:
        print(f"replay did not finish: {len(replayed)} of {200 + n} reached the arm")
        return 1
    keys = [w["key"] for w in replayed]
    expected = [f"warm-kept-{i}" for i in range(200)] + [f"kept-{i}" for i in range(n)]
    in_order = keys == expected and not any(w["duplicate"] for w in replayed)
    p = {
        name: (percentile(v, 50), percentile(v, 95))
        for name, v in (("arm", direct), ("kept", kept))
    }
    print(f"writes per phase: {n}, kept-alive, one at a time, through the edge")
    print(f"write to the arm (200):        p50 {p['arm'][0]:.2f} ms  p95 {p['arm'][1]:.2f} ms")
    print(f"write kept by the queue (202): p50 {p['kept'][0]:.2f} ms  p95 {p['kept'][1]:.2f} ms")
    print(
        f"added latency of a kept write: p50 {p['kept'][0] - p['arm'][0]:+.2f} ms  "
        f"p95 {p['kept'][1] - p['arm'][1]:+.2f} ms"
    )
    seconds = last - first
    print(
        f"replay: {len(replayed)} intents in {seconds:.2f} s = {len(replayed) / seconds:.0f} "
        f"intents/s; every key once, in order: {'yes' if in_order else 'NO'}"
    )
    return 0 if in_order else 1


if __name__ == "__main__":
    sys.exit(main())
