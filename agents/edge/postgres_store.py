"""The intent store on PostgreSQL: one database shared by the edges on several hosts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agents.edge.intent_rows import SCHEMA
from agents.edge.intent_store import IntentStore
from agents.edge.intent_types import Limits, StoreError

SERIAL_POSTGRES = "BIGSERIAL PRIMARY KEY"
ARRIVAL_LOCK = 0x6267_7175_6575_65  # "bgqueue": the advisory lock that orders arrivals


class PostgresStore(IntentStore):
    """One database shared by the edges on several hosts: each holds its own connection."""

    placeholder = "%s"

    now_sql = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"

    def __init__(self, dsn: str, key: bytes | None, limits: Limits | None = None) -> None:
        import psycopg  # only the hosts that use PostgreSQL need it installed

        super().__init__(key, limits)
        try:
            self._conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL intent store: {exc}") from exc
        self._setup()

    def schema(self) -> str:
        return SCHEMA.format(serial=SERIAL_POSTGRES, blob="BYTEA")

    @contextmanager
    def _write(self, arrival: bool = False) -> Iterator[Any]:
        with self._lock, self._conn.transaction():
            cur = self._conn.cursor()
            # Every write, not only arrivals. A sequence hands out numbers at insert, not at
            # commit: two edges inserting at once could commit 8 before 7, and a replay reading
            # "up to 8" would skip 7 for good; held to commit, the lock makes seq order commit
            # order. It also serialises the caps' check against every change of what is
            # pending (queue_load), as BEGIN IMMEDIATE does on SQLite.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (ARRIVAL_LOCK,))

            def run(sql: str, params: tuple = ()) -> Any:
                return cur.execute(self._sql(sql), params)

            yield run

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(self._sql(sql), params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
