"""The reference background writer: a queue consumer that honours the lease's fence.

    python app/consumer.py --db PATH --add-jobs N                # seed N jobs
    python app/consumer.py --db PATH --color green [--interval 0.02]

Run by `bluegreen writer` (agents/arm/writer.py), which passes the lease's fence in BLUEGREEN_FENCE.
Both arms share one SQLite database. Each step is one `BEGIN IMMEDIATE` transaction that first
compares this writer's fence with the highest fence any writer has shown the store: a writer
whose wrapper could not stop it in time (paused, partitioned) is refused there, by the store,
before it writes anything after the new holder's first transaction. It then exits 75
(EX_TEMPFAIL) with `fenced out: fence N < highest M`. SIGTERM finishes the transaction in
progress and exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
import time

# agents/arm/writer.py's name; the app stands alone, so it is repeated
FENCE_ENV = "BLUEGREEN_FENCE"
EX_TEMPFAIL = 75
BUSY_MS = 10_000
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs(id INTEGER PRIMARY KEY, payload, done_by, done_fence, done_at);
CREATE TABLE IF NOT EXISTS fence(id INTEGER PRIMARY KEY CHECK (id = 1), highest INTEGER);
CREATE TABLE IF NOT EXISTS log(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, job INTEGER, color, fence, at
);
INSERT OR IGNORE INTO fence(id, highest) VALUES (1, 0);
"""


def connect(path: str) -> sqlite3.Connection:
    # Autocommit mode: the transactions are the explicit BEGIN IMMEDIATE below, which takes the
    # write lock before the fence is read, so no other writer can raise it in between.
    db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_MS / 1000)
    db.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
    db.execute("PRAGMA journal_mode = WAL")  # the other arm's consumer reads while this one writes
    db.executescript(SCHEMA)
    return db


def add_jobs(path: str, count: int) -> None:
    db = connect(path)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO jobs(payload) VALUES (?)", [(f"job {i}",) for i in range(count)]
        )
        db.execute("COMMIT")
    finally:
        db.close()


class FencedOut(Exception):
    pass


def step(db: sqlite3.Connection, color: str, fence: int) -> bool:
    """One transaction: refuse a stale fence, else raise the store's and do the lowest pending
    job. True if a job was done."""
    db.execute("BEGIN IMMEDIATE")
    try:
        (highest,) = db.execute("SELECT highest FROM fence WHERE id = 1").fetchone()
        if fence < highest:
            raise FencedOut(f"fenced out: fence {fence} < highest {highest}")
        if fence > highest:
            db.execute("UPDATE fence SET highest = ? WHERE id = 1", (fence,))
        row = db.execute("SELECT id FROM jobs WHERE done_by IS NULL ORDER BY id LIMIT 1").fetchone()
        if row is not None:
            now = time.time()
            db.execute(
                "UPDATE jobs SET done_by = ?, done_fence = ?, done_at = ? WHERE id = ?",
                (color, fence, now, row[0]),
            )
            db.execute(
                "INSERT INTO log(job, color, fence, at) VALUES (?, ?, ?, ?)",
                (row[0], color, fence, now),
            )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return row is not None


def consume(path: str, color: str, fence: int, interval: float) -> int:
    stopping: list[int] = []
    # The handler only notes the signal: the transaction in progress commits or rolls back whole.
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    db = connect(path)
    done = 0
    print(f"consumer {color} fence={fence} pid={os.getpid()} consuming {path}", flush=True)
    try:
        while not stopping:
            try:
                done += step(db, color, fence)
            except FencedOut as refusal:
                print(f"consumer {color} {refusal}", flush=True)
                return EX_TEMPFAIL
            time.sleep(interval)
    finally:
        db.close()
    print(f"consumer {color} fence={fence} stopped after {done} jobs", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--db", required=True, help="the SQLite database both arms share")
    cli.add_argument("--color", choices=("blue", "green"), help="this arm's colour")
    cli.add_argument("--interval", type=float, default=0.02, help="seconds between jobs (0.02)")
    cli.add_argument("--add-jobs", type=int, metavar="N", help="seed N jobs and exit")
    args = cli.parse_args(argv)
    if args.add_jobs is not None:
        if args.add_jobs < 0:
            cli.error(f"--add-jobs must be 0 or more; got {args.add_jobs}")
        add_jobs(args.db, args.add_jobs)
        return 0
    if args.color is None:
        cli.error("--color is required to consume (blue or green)")
    if args.interval < 0:
        cli.error(f"--interval must be 0 or more seconds; got {args.interval}")
    try:
        fence = int(os.environ[FENCE_ENV])
    except (KeyError, ValueError):
        cli.error(
            f"${FENCE_ENV} must be the lease's fence, an integer (run me with `bluegreen "
            f"writer`); got {os.environ.get(FENCE_ENV)!r}"
        )
    return consume(args.db, args.color, fence, args.interval)


if __name__ == "__main__":
    sys.exit(main())
