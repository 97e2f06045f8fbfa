"""A flood of keyed writes during maintenance, through the real edge: the queue keeps what its
caps allow, answers the rest 503 or 429 with Retry-After (never 202), and replays every write it
answered 202, once, after maintenance.

A sandbox project on the local platform (real nginx and njs, the real queue service with its
SQLite store, the reference arms), `bluegreen:maintenanceQueue: /orders`, maintenance on. Clients
come from their own loopback addresses (127.0.0.2, 127.0.0.3, ...), each with its own
Authorization, so the per-client limits apply to each as they would to users:

1. the flood: `--writes` POSTs of `--body-kb` KiB, each with its own Idempotency-Key, from
   `--clients` clients at once, each as fast as the edge answers;
2. what the store holds then (pending intents, their bytes, the file on disk) against its caps;
3. maintenance off: every 202'd key must reach the arm once (its `/_arm/writes` journal, read on
   the arm's own port), and nothing else.

    .venv/bin/python -m bench.queue_flood [--writes 10000] [--body-kb 64] [--clients 16]
"""

from __future__ import annotations

import argparse
import collections
import glob
import http.client
import os
import sys
import tempfile
import threading
import time

from bench.queued_writes import journal
from tests.support.sandbox import make_project

CAPS = {
    "maintenanceQueueMaxPending": "2000",
    "maintenanceQueueMaxPendingMb": "64",
    "maintenanceQueueMaxPerClient": "500",
    # Per client, generous: the caps of the store are what this measures; the rate's 429s are
    # counted as they come.
    "maintenanceQueueRate": "200",
    "maintenanceQueueBurst": "200",
    "maintenanceQueueConnections": "4",
}


def flood(port: int, client: int, writes: list[int], body: bytes, out: dict) -> None:
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=30, source_address=(f"127.0.0.{client + 2}", 0)
    )
    auth = f"Bearer client-{client}"
    for i in writes:
        key = f"c{client}-{i}"
        headers = {"Idempotency-Key": key, "Authorization": auth, "Content-Type": "text/plain"}
        try:
            conn.request("POST", f"/orders/{i}", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException) as err:
            out["errors"].append(f"{key}: {err}")
            conn.close()
            continue
        out[resp.status].append(key)
        if resp.status != 202 and not resp.getheader("Retry-After"):
            out["no-retry-after"].append(f"{key}: {resp.status}")
        if resp.getheader("Connection", "").lower() == "close":
            conn.close()
    conn.close()


def on_disk(project_dir: str) -> int:
    return sum(
        os.path.getsize(p)
        for p in glob.glob(
            os.path.join(project_dir, "**", "intents.sqlite3*"), recursive=True, include_hidden=True
        )
    )


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--writes", type=int, default=10000, help="keyed writes in the flood (10000)")
    cli.add_argument("--body-kb", type=int, default=64, help="KiB per write (64, the largest)")
    cli.add_argument("--clients", type=int, default=16, help="clients at once (16)")
    cli.add_argument(
        "--baseline",
        metavar="DIR",
        help="another checkout of the project to measure instead (e.g. a `git worktree` of an "
        "older commit); its program gets the same settings",
    )
    args = cli.parse_args()
    body = b"x" * (args.body_kb * 1024)
    answers: dict = collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(
            tmp, policy=False, **({"root": args.baseline} if args.baseline else {})
        )
        try:
            queue = {"maintenanceQueue": "/orders", "maintenanceSoakSeconds": "1"}
            for key, value in {**queue, **CAPS}.items():
                project.ws.config_set("live", f"bluegreen:{key}", value)
            project.up_all(active="blue")
            edge, arm = project.ports["live"], project.ports["blue"]
            before = len(journal(arm))
            project.ws.config_set("live", "bluegreen:maintenance", "true")
            project.ws.up("live")

            shares = [list(range(c, args.writes, args.clients)) for c in range(args.clients)]
            start = time.perf_counter()
            threads = [
                threading.Thread(target=flood, args=(edge, c, share, body, answers))
                for c, share in enumerate(shares)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - start
            disk = on_disk(project.dir)

            project.ws.config_set("live", "bluegreen:maintenance", "false")
            project.ws.up("live")
            kept = set(answers[202])
            deadline = time.monotonic() + 600
            replayed: list[dict] = []
            while time.monotonic() < deadline:
                replayed = journal(arm)[before:]
                if len(replayed) >= len(kept):
                    break
                time.sleep(0.2)
            time.sleep(2)  # anything more than what was kept would arrive now
            replayed = journal(arm)[before:]
        finally:
            project.teardown()

    keys = [w["key"] for w in replayed]
    once = collections.Counter(keys)
    max_pending = int(CAPS["maintenanceQueueMaxPending"])
    max_bytes = int(CAPS["maintenanceQueueMaxPendingMb"]) * 1024 * 1024
    held = len(kept) * len(body)
    counted = {status: len(v) for status, v in answers.items() if isinstance(status, int)}
    print(
        f"flood: {args.writes} keyed writes of {args.body_kb} KiB from {args.clients} clients "
        f"in {seconds:.1f} s ({args.writes / seconds:.0f} writes/s)"
    )
    print("answers: " + ", ".join(f"{s}: {n}" for s, n in sorted(counted.items())))
    print(f"refusals without Retry-After: {len(answers['no-retry-after'])}")
    print(f"connection errors: {len(answers['errors'])}")
    print(
        f"kept: {len(kept)} intents (cap {max_pending}), {held / 2**20:.1f} MiB of bodies "
        f"(cap {max_bytes / 2**20:.0f} MiB); the store on disk {disk / 2**20:.1f} MiB"
    )
    extra = sorted(set(keys) - kept)
    twice = sorted(k for k, n in once.items() if n > 1)
    missing = sorted(kept - set(keys))
    print(
        f"replayed: {len(keys)} writes reached the arm; kept and not replayed: {len(missing)}; "
        f"replayed twice: {len(twice)}; replayed without a 202: {len(extra)}"
    )
    ok = (
        set(counted) <= {202, 429, 503}
        and not answers["no-retry-after"]
        and not answers["errors"]
        and len(kept) <= max_pending
        and held <= max_bytes
        and not (missing or twice or extra)
    )
    print("verdict: " + ("every promise held" if ok else "a promise broke"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
