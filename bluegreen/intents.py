"""The durable store of writes queued during maintenance, replayed once each when it ends.

A write the edge would refuse while read-only is kept here instead, keyed by its
`Idempotency-Key`: one row per intent, in arrival order (`seq`), with a receipt the client was
given. SQLite serves one edge host; PostgreSQL serves edges on several hosts sharing one queue.
Both run the same SQL (placeholders and two column types aside), so the two cannot drift apart.

Credentials the client sent (SEALED_HEADERS) are needed again on replay, so they are kept, but
sealed with AES-256-GCM: a copy of the store file or a database dump alone does not leak them.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key")
"""Headers that carry credentials: stored encrypted, never shown by `describe`."""

HOP_BY_HOP = ("connection", "keep-alive", "transfer-encoding", "te", "upgrade", "content-length")
"""Headers about the hop to the queue, not the request: replaying them would lie to the edge."""

STATES = ("pending", "delivered", "dead")
KEY_BYTES = 32
NONCE_BYTES = 12

SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    seq {serial},
    receipt TEXT NOT NULL UNIQUE,
    idem_key TEXT NOT NULL UNIQUE,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    headers TEXT NOT NULL,
    sealed {blob},
    body {blob} NOT NULL,
    body_sha256 TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    delivered_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS intents_state_seq ON intents (state, seq)
"""
COLUMNS = "receipt, seq, idem_key, method, path, headers, sealed, body, received_at, attempts, "
COLUMNS += "state, last_status, last_error"


class StoreError(Exception):
    """The store cannot be opened or used as asked; the message says what to fix."""


class KeyReused(StoreError):
    """An Idempotency-Key came back with a different request: the client has a bug (HTTP 422)."""


@dataclass(frozen=True)
class Accepted:
    receipt: str
    seq: int
    duplicate: bool
    """True when the key was seen before: `receipt` is the first request's."""


@dataclass(frozen=True)
class Intent:
    receipt: str
    seq: int
    key: str
    method: str
    path: str
    headers: dict[str, str]
    """The kept headers, sealed ones opened: what the replay sends."""
    body: bytes
    received_at: float
    attempts: int
    state: str
    last_status: int | None
    last_error: str | None


def kept_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(clear, sealed) headers worth replaying. Our own `x-bluegreen-*` are the edge's
    instructions to the queue (retry-after, replay marks): replayed, they would be obeyed twice."""
    clear: dict[str, str] = {}
    sealed: dict[str, str] = {}
    for name, value in headers.items():
        low = name.lower()
        if low in SEALED_HEADERS:
            sealed[low] = value
        elif low in HOP_BY_HOP or low == "host" or low.startswith("x-bluegreen-"):
            continue
        elif low == "content-type" or low.startswith("x-"):
            clear[low] = value
    return clear, sealed


def owner_only(path: str, what: str) -> None:
    """Refuse a file others can read: it holds queued requests, keys or a password."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise StoreError(
            f"{what} {path} is mode {mode:04o}, readable by others than its owner; "
            f"make it owner-only (chmod 600 {path})"
        )


def load_key(path: str) -> bytes:
    """The 32-byte sealing key at `path`, created (0600, in a 0700 directory) if missing, so a
    fresh host needs no setup step; a key others can read is refused rather than trusted."""
    path = os.path.abspath(path)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: read theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
    owner_only(path, "key file")
    with open(path, "rb") as f:
        key = f.read()
    if len(key) != KEY_BYTES:
        raise StoreError(f"key file {path} holds {len(key)} bytes; a key is {KEY_BYTES} bytes")
    return key


class IntentStore:
    """What both databases share: every query, the sealing, the rules. A dialect supplies the
    connection, the placeholder, and how a write transaction is taken."""

    placeholder = "?"

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise StoreError(f"the sealing key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        # One connection per store, used by the intake's threads and the replay thread in turn.
        self._lock = threading.Lock()

    # -- dialect hooks
    @contextmanager
    def _write(self, arrival: bool = False) -> Iterator[Any]:
        raise NotImplementedError

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    # -- sealing
    def _seal(self, receipt: str, values: dict[str, str]) -> bytes | None:
        if not values:
            return None
        nonce = secrets.token_bytes(NONCE_BYTES)
        plain = json.dumps(values).encode()
        # The receipt as associated data: a sealed blob moved onto another row does not open.
        return nonce + self._aead.encrypt(nonce, plain, receipt.encode())

    def _open(self, receipt: str, blob: bytes | None) -> dict[str, str]:
        if not blob:
            return {}
        blob = bytes(blob)
        try:
            plain = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], receipt.encode())
        except InvalidTag:
            raise StoreError(
                f"the sealed headers of intent {receipt} do not open with this key: "
                "is --key-file the one the store was written with?"
            ) from None
        return json.loads(plain)

    def _intent(self, row: tuple) -> Intent:
        receipt, seq, key, method, path, headers, sealed, body, at, attempts, state, st, err = row
        return Intent(
            receipt=receipt,
            seq=seq,
            key=key,
            method=method,
            path=path,
            headers={**json.loads(headers), **self._open(receipt, sealed)},
            body=bytes(body),
            received_at=at,
            attempts=attempts,
            state=state,
            last_status=st,
            last_error=err,
        )

    # -- the queue
    def accept(
        self,
        key: str,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        now: float,
    ) -> Accepted:
        """Keep one write. The unique key decides between concurrent accepts of the same key:
        the loser gets the winner's receipt, so a client retrying never queues a write twice."""
        digest = hashlib.sha256(body).hexdigest()
        receipt = "r-" + secrets.token_hex(8)
        clear, sealed = kept_headers(headers)
        blob = self._seal(receipt, sealed)
        with self._write(arrival=True) as run:
            rows = run(
                "INSERT INTO intents (receipt, idem_key, method, path, headers, sealed, body,"
                " body_sha256, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (idem_key) DO NOTHING RETURNING seq",
                (receipt, key, method, path, json.dumps(clear), blob, body, digest, now),
            ).fetchall()  # all, so no statement is left open when the transaction commits
            if rows:
                return Accepted(receipt, rows[0][0], duplicate=False)
            first = run(
                "SELECT receipt, seq, method, path, body_sha256 FROM intents WHERE idem_key = ?",
                (key,),
            ).fetchone()
        if first[2:] != (method, path, digest):
            raise KeyReused(
                f"Idempotency-Key {key!r} was first used for {first[2]} {first[3]} with another "
                "body; a key names one request"
            )
        return Accepted(first[0], first[1], duplicate=True)

    def pending(self, limit: int = 100) -> list[Intent]:
        """The oldest `limit` intents waiting, in arrival order: the replay's next round."""
        rows = self._query(
            f"SELECT {COLUMNS} FROM intents WHERE state = 'pending' ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [self._intent(r) for r in rows]

    def dead_letters(self) -> list[Intent]:
        rows = self._query(f"SELECT {COLUMNS} FROM intents WHERE state = 'dead' ORDER BY seq")
        return [self._intent(r) for r in rows]

    def delivered(self, receipt: str, status: int, now: float | None = None) -> None:
        with self._write() as run:
            run(
                "UPDATE intents SET state = 'delivered', attempts = attempts + 1,"
                " last_status = ?, last_error = NULL, delivered_at = ? WHERE receipt = ?",
                (status, time.time() if now is None else now, receipt),
            )

    def failed(self, receipt: str, status: int | None, error: str, dead: bool) -> None:
        """Count one failed attempt; `dead` moves the intent to the dead-letter list."""
        with self._write() as run:
            run(
                "UPDATE intents SET attempts = attempts + 1, last_status = ?, last_error = ?,"
                " state = CASE WHEN ? = 1 THEN 'dead' ELSE state END"
                " WHERE receipt = ? AND state = 'pending'",
                (status, error, int(dead), receipt),
            )

    def retry(self, receipt: str | None = None) -> int:
        """Put one dead intent (or all) back in the queue, with fresh attempts. Its seq stays,
        so the next replay takes it in arrival order among the ones still waiting."""
        sql = "UPDATE intents SET state = 'pending', attempts = 0 WHERE state = 'dead'"
        params: tuple = ()
        if receipt is not None:
            sql, params = sql + " AND receipt = ?", (receipt,)
        with self._write() as run:
            return run(sql, params).rowcount

    def drop(self, receipt: str) -> bool:
        """Forget a dead intent for good. Only a dead one: dropping a pending one would lose a
        write the client was told is queued. False if there is no such intent."""
        with self._write() as run:
            row = run("SELECT state FROM intents WHERE receipt = ?", (receipt,)).fetchone()
            if row is None:
                return False
            if row[0] != "dead":
                raise StoreError(
                    f"intent {receipt} is {row[0]}, not dead: only dead letters can be dropped"
                )
            run("DELETE FROM intents WHERE receipt = ?", (receipt,))
            return True

    def counts(self) -> dict[str, int]:
        found = dict(self._query("SELECT state, COUNT(*) FROM intents GROUP BY state"))
        return {state: int(found.get(state, 0)) for state in STATES}


class SqliteStore(IntentStore):
    """One file on the edge host, owner-only, every commit on disk before the 202 goes out."""

    def __init__(self, path: str, key: bytes) -> None:
        super().__init__(key)
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
            self._conn.executescript(SCHEMA.format(serial=SERIAL_SQLITE, blob="BLOB"))
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

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


SERIAL_SQLITE = "INTEGER PRIMARY KEY AUTOINCREMENT"
SERIAL_POSTGRES = "BIGSERIAL PRIMARY KEY"
ARRIVAL_LOCK = 0x6267_7175_6575_65  # "bgqueue": the advisory lock that orders arrivals


class PostgresStore(IntentStore):
    """One database shared by the edges on several hosts: each holds its own connection."""

    placeholder = "%s"

    def __init__(self, dsn: str, key: bytes) -> None:
        import psycopg  # only the hosts that use PostgreSQL need it installed

        super().__init__(key)
        try:
            self._conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL intent store: {exc}") from exc
        with self._write(arrival=True) as run:  # two edges starting at once: one creates it
            for statement in SCHEMA.format(serial=SERIAL_POSTGRES, blob="BYTEA").split(";"):
                if statement.strip():
                    run(statement)

    @contextmanager
    def _write(self, arrival: bool = False) -> Iterator[Any]:
        with self._lock, self._conn.transaction():
            cur = self._conn.cursor()
            if arrival:
                # A sequence hands out numbers at insert, not at commit: two edges inserting
                # at once could commit 8 before 7, and a replay reading "up to 8" would skip 7
                # for good. Held to commit, the lock makes seq order commit order.
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


def open_store(spec: str, key: bytes) -> IntentStore:
    """`sqlite:///abs/path/intents.sqlite3` (one host) or a `postgresql://` DSN (several)."""
    if spec.startswith("sqlite://"):
        path = spec[len("sqlite://") :]
        if not os.path.isabs(path):
            raise StoreError(f"the SQLite store needs an absolute path, got {spec!r}")
        return SqliteStore(path, key)
    if spec.startswith(("postgresql://", "postgres://")):
        return PostgresStore(spec, key)
    raise StoreError(
        "the intent store must be sqlite:///absolute/path or a postgresql:// DSN, "
        f"got {spec.split('://')[0]!r}"
    )


def describe(intent: Intent) -> dict:
    """An intent as `bluegreen status` shows it: never the value of a sealed header."""
    return {
        "receipt": intent.receipt,
        "seq": intent.seq,
        "key": intent.key,
        "method": intent.method,
        "path": intent.path,
        "state": intent.state,
        "received_at": datetime.fromtimestamp(intent.received_at, UTC).isoformat(),
        "attempts": intent.attempts,
        "last_status": intent.last_status,
        "last_error": intent.last_error,
        "headers": sorted(intent.headers),
    }


@dataclass(frozen=True)
class LocalFiles:
    """Where the queue service on an edge host keeps its files, under the edge's run directory:
    the SQLite store, the key that seals credentials, and the file a PostgreSQL DSN is handed
    over in. The local platform, the operator's commands and the NixOS module agree on them."""

    store_path: str
    key: str
    dsn_file: str

    @property
    def store(self) -> str:
        return f"sqlite:///{self.store_path}"


def local_files(run_dir: str) -> LocalFiles:
    where = os.path.join(run_dir, "queue")
    return LocalFiles(
        store_path=os.path.join(where, "intents.sqlite3"),
        key=os.path.join(where, "intents.key"),
        dsn_file=os.path.join(where, "store"),
    )
