"""The expand 0002_items_name on a table of `--rows` rows (default 1,000,000) while reads run.

A throwaway PostgreSQL on loopback (tests/support/postgres.py: initdb in a temporary directory,
fsync off, stopped however the bench ends), migrated to 0001_items with bluegreen.schema.upgrade
and loaded with COPY. `--readers` threads (default 4), each on its own connection, read at
`--rate` reads/s each (default 200): a point read by a random id (`WHERE id = $1`), every tenth a
range of 20 ids from a random one. Their latency (send to last row) is measured for `--seconds`
(default 20) before the migration, then during the real upgrade to 0002_items_name
(bluegreen.schema.upgrade: the column, the trigger, the backfill in batches of 5,000 ids, one
commit each). It prints, side by side, the reads before and during (count, errors, p50, p95,
p99, max), then the backfill: rows, seconds, rows/s, and the longest batch, which is how long one
batch held its rows' locks (each batch is one autocommitted UPDATE: its locks last as long as
the statement), and the DDL transaction's (ADD COLUMN, trigger) hold of the table. Then it checks
every row has name = title.

    .venv/bin/python -m bench.backfill [--rows 1000000] [--readers 4] [--rate 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bluegreen import schema
from tests.support import postgres

POINT = "SELECT id, title, created_at FROM items WHERE id = %s"
RANGE = "SELECT id, title, created_at FROM items WHERE id >= %s ORDER BY id LIMIT 20"
WARMUP = 2.0  # seconds of reads before the first counted one (connections, plans, cache)


class Readers:
    """Reader threads at a fixed rate each; every read as (sent, seconds), every error as text."""

    def __init__(self, dsn: str, count: int, rows: int, rate: float) -> None:
        self.dsn, self.rows, self.interval = dsn, rows, 1.0 / rate
        self.samples: list[tuple[float, float]] = []
        self.errors: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.read, args=(i,), daemon=True) for i in range(count)
        ]

    def __enter__(self) -> Readers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def read(self, n: int) -> None:
        rng = random.Random(n)
        conn: psycopg.Connection | None = None
        due = time.perf_counter()
        i = 0
        try:
            while not self.stop.is_set():
                i += 1
                sql = RANGE if i % 10 == 0 else POINT
                sent = time.perf_counter()
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
                        sent = time.perf_counter()
                    conn.execute(sql, (rng.randint(1, self.rows),)).fetchall()
                    self.samples.append((sent, time.perf_counter() - sent))
                except psycopg.Error as e:
                    self.errors.append((sent, f"{type(e).__name__}: {e}"))
                    if conn is not None:
                        conn.close()
                    conn = None
                    self.stop.wait(0.1)
                due += self.interval
                now = time.perf_counter()
                if due < now - self.interval:  # behind: skip the missed slots, do not bunch
                    due = now
                self.stop.wait(max(0.0, due - now))
        finally:
            if conn is not None:
                conn.close()

    def window(self, start: float, end: float) -> dict:
        took = sorted(s for sent, s in list(self.samples) if start <= sent < end)
        errors = sum(1 for sent, _ in list(self.errors) if start <= sent < end)
        return {"seconds": end - start, "reads": len(took), "errors": errors, "took": took}


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest rank."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


class Statements:
    """The migration's statements and commits, as SQLAlchemy runs them (the readers use psycopg
    directly, so only the migration's are seen)."""

    def __init__(self) -> None:
        self.done: list[tuple[str, float, float, int]] = []  # (sql, start, end, rowcount)
        self.commits: list[float] = []
        self._start: dict[int, float] = {}

    def __enter__(self) -> Statements:
        event.listen(Engine, "before_cursor_execute", self.before)
        event.listen(Engine, "after_cursor_execute", self.after)
        event.listen(Engine, "commit", self.commit)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(Engine, "before_cursor_execute", self.before)
        event.remove(Engine, "after_cursor_execute", self.after)
        event.remove(Engine, "commit", self.commit)

    def before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self._start[id(cursor)] = time.perf_counter()

    def after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        end = time.perf_counter()
        start = self._start.pop(id(cursor), end)
        self.done.append((" ".join(statement.split()), start, end, cursor.rowcount))

    def commit(self, conn) -> None:
        self.commits.append(time.perf_counter())


def load(dsn: str, rows: int) -> float:
    """`rows` rows into items with COPY; the seconds it took (VACUUM ANALYZE included)."""
    start = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.cursor() as cur, cur.copy("COPY items (title) FROM STDIN") as copy:
            chunk = 50_000
            for low in range(1, rows + 1, chunk):
                high = min(rows, low + chunk - 1)
                copy.write("".join(f"item {i}\n" for i in range(low, high + 1)))
        conn.execute("VACUUM ANALYZE items")
        conn.execute("CHECKPOINT")
        (count,) = conn.execute("SELECT count(*) FROM items").fetchone()
    if count != rows:
        raise SystemExit(f"loaded {count} rows, not {rows}")
    return time.perf_counter() - start


def check(dsn: str) -> tuple[int, int]:
    """(rows, rows whose name is not their title)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE name IS DISTINCT FROM title) FROM items"
        ).fetchone()


def measure(args: argparse.Namespace) -> dict:
    found: dict = {"load": os.getloadavg()[0]}
    with postgres.server() as server:
        dsn = postgres.database(server)
        schema.upgrade(dsn, "0001_items")
        found["loadSeconds"] = load(dsn, args.rows)
        with Readers(dsn, args.readers, args.rows, args.rate) as readers:
            time.sleep(WARMUP)
            start = time.perf_counter()
            time.sleep(args.seconds)
            found["before"] = readers.window(start, time.perf_counter())
            with Statements() as statements:
                start = time.perf_counter()
                found["applied"] = schema.upgrade(dsn, "0002_items_name")
                end = time.perf_counter()
            found["during"] = readers.window(start, end)
            found["upgrade"] = end - start
        found["errors"] = readers.errors[:5]
        found["rows"], found["wrong"] = check(dsn)
    batches = [(s, e, n) for sql, s, e, n in statements.done if sql.startswith("UPDATE items SET")]
    found["batches"] = [e - s for s, e, _ in batches]
    found["backfilled"] = sum(n for _, _, n in batches)
    found["batchSpan"] = batches[-1][1] - batches[0][0] if batches else 0.0
    altered = [s for sql, s, _, _ in statements.done if sql.startswith("ALTER TABLE items")]
    alter = altered[0] if altered else None
    if alter is not None:
        committed = [c for c in statements.commits if c > alter]
        found["ddl"] = (committed[0] if committed else end) - alter
    return found


def row(name: str, w: dict) -> str:
    took = w["took"]
    ms = [percentile(took, p) * 1000 for p in (50, 95, 99)] + [max(took, default=0.0) * 1000]
    counts = f"{name:<7}  {w['seconds']:>7.1f}  {w['reads']:>7,}  {w['errors']:>6}"
    return counts + "".join(f"  {v:>7.2f}" for v in ms)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=200.0, help="reads/s of each reader")
    parser.add_argument("--seconds", type=float, default=20.0, help="the before phase's length")
    args = parser.parse_args()
    began = time.perf_counter()
    r = measure(args)
    print(
        f"reads while 0002_items_name backfills {args.rows:,} rows: {args.readers} readers at "
        f"{args.rate:g} reads/s each (by id, every tenth a range of 20 ids)"
    )
    print(
        f"{'phase':<7}  {'seconds':>7}  {'reads':>7}  {'errors':>6}  {'p50 ms':>7}  "
        f"{'p95 ms':>7}  {'p99 ms':>7}  {'max ms':>7}"
    )
    print(row("before", r["before"]))
    print(row("during", r["during"]))
    for _, message in r["errors"]:
        print(f"  error: {message.strip()[:200]}")
    batches = r["batches"]
    print(
        f"backfill: {r['backfilled']:,} rows; the upgrade {r['upgrade']:.2f} s, "
        f"{r['backfilled'] / r['upgrade']:,.0f} rows/s; its {len(batches)} batches "
        f"{r['batchSpan']:.2f} s ({r['backfilled'] / max(r['batchSpan'], 1e-9):,.0f} rows/s)"
    )
    if batches:
        print(
            f"one batch's row locks held: median {statistics.median(batches) * 1000:.1f} ms, "
            f"max {max(batches) * 1000:.1f} ms (one autocommitted UPDATE of up to 5,000 rows)"
        )
    if "ddl" in r:
        print(
            f"the table's lock for the column and the trigger (ALTER to commit): "
            f"{r['ddl'] * 1000:.1f} ms"
        )
    print(
        f"after: {r['rows']:,} rows, {r['wrong']} with name != title; applied {r['applied']}; "
        f"loaded with COPY in {r['loadSeconds']:.1f} s; load average at start {r['load']:.2f} "
        f"on {os.cpu_count()} cores; the bench took {time.perf_counter() - began:.0f} s"
    )
    if r["wrong"] or r["rows"] != args.rows or r["backfilled"] != args.rows:
        print("FAILED: not every row was backfilled", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
