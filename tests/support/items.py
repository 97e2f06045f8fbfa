"""Users of the reference app's items (app/items.py) while the arms that serve them change: writers
and readers through the edge, and what a test reads back of the rows, through an arm or straight
from the database.

A writer does not know which release answers: it sends each value under both names, `title`
(what a v1 arm reads of a POST) and `name` (what a v2 arm reads); each shape takes its own key and
leaves the other alone. As a real client does, it sends each write with an Idempotency-Key of its
own and, when the write is answered 503 (the arm could not reach the database: nothing was kept),
or not answered at all, sends it again with the same key after Retry-After.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg

from bluegreen import probe
from tests.support.watcher import Users

SHAPES = {"title", "name"}
"""The one key each shape answers a row with besides its id: v1 `title`, v2 `name`."""


@dataclass(frozen=True)
class Written:
    """A write the app acknowledged (2xx): the row's id, the value sent, who answered."""

    id: int
    value: str
    color: str | None
    attempts: int


def _value_of(row: dict, column: str | None = None) -> str | None:
    """The row's value in the one shape it is in (`column` when the answer must be in that one),
    or None when the row is in neither shape, both, or not the one asked."""
    shown = set(row) - {"id"}
    if len(shown) != 1 or not shown <= SHAPES or (column and shown != {column}):
        return None
    return row[shown.pop()]


class Writers(Users):
    """`writers` threads each POSTing one new item at a time to `url` + "items" until the `with`
    block ends (the write under way when it ends is finished, retries and all)."""

    def __init__(
        self,
        url: str,
        shapes: dict[str, str],
        writers: int = 3,
        pause: float = 0.02,
        give_up_s: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/") + "/items"
        self.shapes = shapes
        """Colour -> the key its release answers a row with (`title` or `name`)."""
        self.pause, self.give_up_s = pause, give_up_s
        self.written: list[Written] = []
        self.retries: list[str] = []
        """Each answer that was retried: a 503, or none."""
        self.failures: list[str] = []
        """Each write never acknowledged, or acknowledged with the wrong row."""
        self._lock = threading.Lock()
        super().__init__([(i,) for i in range(writers)])

    def _run(self, writer: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            self._write(f"w{writer}-{n}-{uuid.uuid4().hex[:6]}")
            time.sleep(self.pause)

    def _write(self, value: str) -> None:
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())}
        body = json.dumps({"title": value, "name": value}).encode()
        start, attempts = time.monotonic(), 0
        while True:
            attempts += 1
            answer = probe.request(self.url, "POST", timeout=10, headers=headers, body=body)
            if answer.status is not None and 200 <= answer.status < 300:
                row = answer.json()
                column = self.shapes.get(answer.color or "")
                if _value_of(row, column) != value or not isinstance(row.get("id"), int):
                    self._fail(f"{value}: {answer.color} answered {answer.status} {row}")
                    return
                with self._lock:
                    self.written.append(Written(row["id"], value, answer.color, attempts))
                return
            said = f"{value} (attempt {attempts}): {answer.describe()} {answer.body[:200]!r}"
            if answer.status not in (503, None):
                self._fail(said)
                return
            if time.monotonic() - start > self.give_up_s:
                self._fail(f"{said}; gave up after {self.give_up_s:g} s")
                return
            with self._lock:
                self.retries.append(said)
            try:
                wait = float(answer.headers.get("retry-after", "1"))
            except ValueError:
                wait = 1.0
            time.sleep(min(max(wait, 0.1), 5.0))

    def _fail(self, said: str) -> None:
        with self._lock:
            self.failures.append(said)

    def by_color(self) -> dict[str | None, int]:
        counts: dict[str | None, int] = {}
        for w in self.written:
            counts[w.color] = counts.get(w.color, 0) + 1
        return counts


class Readers(Users):
    """`readers` threads each reading, one at a time through `url`, a row `writers` wrote so far,
    checking it is in the shape of the colour that answered and holds what was written."""

    def __init__(self, url: str, writers: Writers, readers: int = 2, pause: float = 0.02) -> None:
        self.url = url.rstrip("/") + "/items/"
        self.writers, self.pause = writers, pause
        self.reads: dict[str | None, int] = {}
        """Rows read correctly, by the colour that answered."""
        self.failures: list[str] = []
        self._lock = threading.Lock()
        super().__init__([() for _ in range(readers)])

    def _run(self) -> None:
        while not self._stop.is_set():
            written = self.writers.written
            if written:
                w = written[random.randrange(len(written))]
                answer = probe.request(f"{self.url}{w.id}", timeout=5)
                column = self.writers.shapes.get(answer.color or "")
                if answer.status == 200 and _value_of(answer.json(), column) == w.value:
                    with self._lock:
                        self.reads[answer.color] = self.reads.get(answer.color, 0) + 1
                else:
                    self.failures.append(
                        f"row {w.id} ({w.value!r}): {answer.describe()} "
                        f"from {answer.color} {answer.body[:200]!r}"
                    )
            time.sleep(self.pause)


def misread(arm_url: str, column: str, written: list[Written], threads: int = 4) -> list[str]:
    """Each written row read through one arm's own endpoint, in its shape (`column`), on a few
    kept-alive connections: what does not read back as written."""
    parts = urlsplit(arm_url)

    def check(share: list[Written]) -> list[str]:
        wrong = []
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        try:
            for w in share:
                try:
                    conn.request("GET", f"/items/{w.id}")
                    answer = conn.getresponse()
                    status, body = answer.status, answer.read()
                except (OSError, http.client.HTTPException) as e:
                    conn.close()  # the next request opens a new one
                    status, body = None, repr(e).encode()
                try:
                    row = json.loads(body)
                except ValueError:
                    row = {}
                if status != 200 or _value_of(row, column) != w.value:
                    wrong.append(f"row {w.id} ({w.value!r}): HTTP {status} {body[:200]!r}")
        finally:
            conn.close()
        return wrong

    with ThreadPoolExecutor(max_workers=threads) as pool:
        shares = [written[i::threads] for i in range(threads)]
        return [found for wrong in pool.map(check, shares) for found in wrong]


def table(dsn: str) -> list[dict]:
    """Every row of the items table, by id, as the database has it (each column it has now)."""
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        cur = conn.execute("SELECT * FROM items ORDER BY id")
        names = [c.name for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def columns(dsn: str) -> list[str]:
    """The items table's columns, in order."""
    query = (
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'items' "
        "ORDER BY ordinal_position"
    )
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return [row[0] for row in conn.execute(query).fetchall()]


def versions(dsn: str) -> list[str]:
    """What Alembic's own table says the database is at."""
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
