"""The reference app's table: items in PostgreSQL (psycopg 3), in the shape its release needs.

Shape "v1" (the release that needs revision 0001_items) reads and writes `title`; shape "v2"
(0002_items_name and later) reads and writes `name`. While both columns exist, the trigger of
0002_items_name fills the one a write left out, so each shape reads every row.

Connections are kept for reuse, a few at a time, each checked before it is used again (a
restarted database costs the requests in flight, not the ones after); one that fails a request is
closed. Errors are psycopg's (Items.Error): the server answers them 503.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import psycopg
from psycopg import sql

COLUMNS = {"v1": "title", "v2": "name"}
LIMIT = 1000  # GET /items lists the first LIMIT rows by id
IDLE = 4  # connections kept between requests


class Items:
    Error = psycopg.Error  # what a request can fail with: the database's errors

    def __init__(self, dsn: str, shape: str) -> None:
        self.dsn = dsn
        self.column = COLUMNS[shape]
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None:
            try:
                conn.execute("")  # still alive? (psycopg_pool's check): not after a restart
            except psycopg.Error:
                conn.close()
                conn = None
        if conn is None:
            conn = psycopg.connect(self.dsn, connect_timeout=5, autocommit=True)
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if len(self._idle) < IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def _query(self, query: sql.Composable, params: tuple = ()) -> list[dict]:
        with self._connection() as conn:
            rows = conn.execute(query, params).fetchall()
        return [{"id": row[0], self.column: row[1]} for row in rows]

    def _select(self, where: str) -> sql.Composed:
        return sql.SQL("SELECT id, {} FROM items " + where).format(sql.Identifier(self.column))

    def list(self) -> list[dict]:
        return self._query(self._select("ORDER BY id LIMIT %s"), (LIMIT,))

    def get(self, item_id: int) -> dict | None:
        found = self._query(self._select("WHERE id = %s"), (item_id,))
        return found[0] if found else None

    def add(self, value: str) -> dict:
        insert = sql.SQL("INSERT INTO items ({0}) VALUES (%s) RETURNING id, {0}").format(
            sql.Identifier(self.column)
        )
        return self._query(insert, (value,))[0]

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
