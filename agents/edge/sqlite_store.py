"""The intent store on SQLite: one file on the edge host, for an edge on one host."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agents.edge.intent_rows import SCHEMA
from agents.edge.intent_store import IntentStore
from agents.edge.intent_types import Limits
from agents.edge.sealing import owner_only

SERIAL_SQLITE = "INTEGER PRIMARY KEY AUTOINCREMENT"


class SqliteStore(IntentStore):
    """One file on the edge host, owner-only, every commit on disk before the 202 goes out."""

    now_sql = "(julianday('now') - 2440587.5) * 86400.0"

    def __init__(self, path: str, key: bytes | None, limits: Limits | None = None) -> None:
        super().__init__(key, limits)
        self.path = path
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700)
        if os.path.exists(path):
            owner_only(path, "intent store")
        # The -wal and -shm files are created later, by SQLite: the umask keeps them owner-only.
        old = os.umask(0o077)
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is synced at each commit, so an accepted intent survives a kill -9
            # of the service and a power loss, not only a clean exit.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._setup()
        finally:
            os.umask(old)
        for side in (path, path + "-wal", path + "-shm"):
            if os.path.exists(side):
                owner_only(side, "intent store")

    @contextmanager
    def _write(self, arrival: bool = False) -> Iterator[Any]:
        # IMMEDIATE takes the write lock up front: the seq AUTOINCREMENT hands out is committed
        # before another writer can take the next one, so seq order is commit order.
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn.execute
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def schema(self) -> str:
        return SCHEMA.format(serial=SERIAL_SQLITE, blob="BLOB")

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _space_problem(self, size: int) -> str | None:
        # A full disk fails SQLite's commit mid-way at best; refusing early keeps room for the
        # WAL's checkpoint and for the replay's own writes.
        disk = os.statvfs(os.path.dirname(self.path))
        free = disk.f_bavail * disk.f_frsize
        if free - size < self.limits.min_free_bytes:
            return (
                f"the disk under {os.path.dirname(self.path)} has {free >> 20} MiB free, less "
                f"than the {self.limits.min_free_bytes >> 20} MiB it keeps free"
            )
        return None

    def close(self) -> None:
        with self._lock:
            self._conn.close()
