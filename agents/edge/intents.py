"""The durable store of writes queued during maintenance, replayed when it ends: each sent at least
once, applied once by the arm's Idempotency-Key dedupe.

A write the edge would refuse while read-only is kept here instead, keyed by its
`Idempotency-Key`: one row per intent, in arrival order (`seq`), with a receipt the client was
given. SQLite serves one edge host; PostgreSQL serves edges on several hosts sharing one queue.
Both run the same SQL (placeholders and two column types aside), so the two cannot drift apart.

Every header but a few harmless ones (CLEAR_HEADERS) is needed again on replay and may carry a
credential, so it is kept sealed with AES-256-GCM, bound to the row's receipt, method, path,
body, key and client: a copy of the store or a dump alone does not leak them, and a row changed
under a victim's sealed credentials does not open (it is a dead letter, never sent).
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

CLEAR_HEADERS = (
    "content-type",
    "content-language",
    "content-encoding",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "user-agent",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
)
"""Headers that say how to read the request, never who sends it: the only ones stored in clear.
Every other kept header (credentials, cookies, API keys, anything unknown) is sealed."""

HOP_BY_HOP = ("connection", "keep-alive", "transfer-encoding", "te", "upgrade", "content-length")
"""Headers about the hop to the queue, not the request: replaying them would lie to the edge."""

STATES = ("pending", "delivered", "dead")
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_CHECK = b"bluegreen intent store"
"""Sealed into the store at its first open: a key that does not open it is the wrong key, so a
row that then fails to open was changed, not misread."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    seq {serial},
    receipt TEXT NOT NULL UNIQUE,
    client TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    headers TEXT NOT NULL,
    sealed {blob},
    body {blob} NOT NULL,
    body_sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    first_failed_at DOUBLE PRECISION,
    delivered_at DOUBLE PRECISION,
    UNIQUE (client, idem_key)
);
CREATE INDEX IF NOT EXISTS intents_state_seq ON intents (state, seq);
CREATE INDEX IF NOT EXISTS intents_state_client ON intents (state, client, size);
CREATE TABLE IF NOT EXISTS replay_claim (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    fence BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS queue_load (
    client TEXT PRIMARY KEY,
    pending BIGINT NOT NULL,
    bytes BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS store_meta (
    name TEXT PRIMARY KEY,
    value {blob} NOT NULL
)
"""
TOTAL = "*"
"""The `queue_load` row of the whole queue (a client is a hex digest, never "*")."""
COLUMNS = "receipt, seq, client, idem_key, method, path, headers, sealed, body, body_sha256, "
COLUMNS += "received_at, attempts, state, last_status, last_error, first_failed_at"


class StoreError(Exception):
    """The store cannot be opened or used as asked; the message says what to fix."""


class KeyReused(StoreError):
    """An Idempotency-Key came back with a different request: the client has a bug (HTTP 422)."""


class QueueFull(StoreError):
    """The queue, this client's share of it, or the disk under it is full (HTTP 503)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        """"queue-full", "client-full" or "disk-full"."""


class Unopened(StoreError):
    """A row's sealed headers do not open with the store's own key: the row was changed."""


@dataclass(frozen=True)
class Limits:
    """What the queue keeps at most: it answers 503 rather than grow without bound. The stack's
    defaults are written in Pulumi.yaml (bluegreen:maintenanceQueueMax*, ...MinFreeMb)."""

    max_pending: int = 10_000
    max_pending_bytes: int = 256 << 20
    max_per_client: int = 2_500
    """Pending intents one client may have: one client cannot fill the queue for the others."""
    min_free_bytes: int = 256 << 20
    """SQLite only: space the disk under the store keeps free after a write."""


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
    client: str = ""
    first_failed_at: float | None = None
    """When the first of the current run of transient failures happened (None: none yet)."""


def client_id(headers: Mapping[str, str], peer: str) -> str:
    """Who sent a write, as a digest: of its Authorization, else its Cookie, else the address it
    came from. Idempotency keys are the client's own: one client's key cannot reach another's
    receipt, nor be refused because another used it."""
    low = {k.lower(): v for k, v in headers.items()}
    for name in ("authorization", "cookie"):
        if low.get(name):
            return hashlib.sha256(f"{name}:{low[name]}".encode()).hexdigest()
    return hashlib.sha256(f"peer:{peer}".encode()).hexdigest()


def kept_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(clear, sealed) headers worth replaying. Our own `x-bluegreen-*` are the edge's
    instructions to the queue (retry-after, replay marks): replayed, they would be obeyed twice.
    The Idempotency-Key is kept in its own column."""
    clear: dict[str, str] = {}
    sealed: dict[str, str] = {}
    for name, value in headers.items():
        low = name.lower()
        if (
            low in HOP_BY_HOP
            or low in ("host", "idempotency-key")
            or low.startswith("x-bluegreen-")
        ):
            continue
        if low in CLEAR_HEADERS:
            clear[low] = value
        else:
            sealed[low] = value
    return clear, sealed


def owner_only(path: str, what: str) -> None:
    """Refuse a file others can read: it holds queued requests, keys or a password."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise StoreError(
            f"{what} {path} is mode {mode:04o}, readable by others than its owner; "
            f"make it owner-only (chmod 600 {path})"
        )


def load_key(path: str, create: bool = False) -> bytes:
    """The 32-byte sealing key at `path`; a key others can read is refused rather than trusted.
    `create` makes one (0600, in a 0700 directory) if missing: only `open_keyed` asks, for a
    store with nothing sealed in it, since a new key makes every sealed row unreadable."""
    path = os.path.abspath(path)
    if not os.path.exists(path):
        if not create:
            raise StoreError(
                f"no key file at {path}: the intent store's sealed headers need the key they "
                "were sealed with; restore it there (on PostgreSQL, the same file every edge "
                "host uses)"
            )
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


def _aad(receipt: str, method: str, path: str, digest: str, key: str, client: str) -> bytes:
    # Everything the replay acts on: a victim's sealed Authorization does not open under a row
    # whose method, path, body, key or client was changed, nor on another row.
    return json.dumps([receipt, method, path, digest, key, client]).encode()


class IntentStore:
    """What both databases share: every query, the sealing, the rules. A dialect supplies the
    connection, the placeholder, how a write transaction is taken and the database's clock."""

    placeholder = "?"
    now_sql = "0"
    """The database's clock, in epoch seconds: every edge sharing a store reads the same one."""

    def __init__(self, key: bytes | None, limits: Limits | None = None) -> None:
        if key is not None and len(key) != KEY_BYTES:
            raise StoreError(f"the sealing key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key) if key is not None else None
        self.limits = limits or Limits()
        # One connection per store, used by the intake's threads and the replay thread in turn.
        self._lock = threading.Lock()

    # -- dialect hooks
    @contextmanager
    def _write(self, arrival: bool = False) -> Iterator[Any]:
        raise NotImplementedError

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        raise NotImplementedError

    def _space_problem(self, size: int) -> str | None:
        """Why the disk cannot take `size` more bytes now, or None."""
        return None

    def close(self) -> None:
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def _setup(self) -> None:
        """The tables, then the key check: a wrong key is refused here, before any row is read."""
        try:
            with self._write(arrival=True) as run:  # two edges starting at once: one creates them
                for statement in self.schema().split(";"):
                    if statement.strip():
                        run(statement)
                run("SELECT client, size, first_failed_at FROM intents LIMIT 0").fetchall()
                self._recount(run)
        except Exception as exc:  # sqlite3 or psycopg: whichever the dialect raised
            raise StoreError(
                f"cannot set up the intent store ({exc}); a store written by an older bluegreen "
                "(no client column) must be replayed or drained with that version, then moved "
                "aside"
            ) from None
        if self._aead is None:
            return
        nonce = secrets.token_bytes(NONCE_BYTES)
        check = nonce + self._aead.encrypt(nonce, KEY_CHECK, b"key-check")
        with self._write(arrival=True) as run:
            run(
                "INSERT INTO store_meta (name, value) VALUES ('key-check', ?)"
                " ON CONFLICT (name) DO NOTHING",
                (check,),
            )
        [(blob,)] = self._query("SELECT value FROM store_meta WHERE name = 'key-check'")
        blob = bytes(blob)
        try:
            self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], b"key-check")
        except InvalidTag:
            raise StoreError(
                "the key does not open this intent store (its sealed headers do not open with "
                "this key): is --key-file the one the store was written with?"
            ) from None

    def schema(self) -> str:
        raise NotImplementedError

    def has_rows(self) -> bool:
        """True when the store holds an intent or was sealed with a key already."""
        found = self._query("SELECT COUNT(*) FROM intents")[0][0]
        return bool(found) or bool(self._query("SELECT COUNT(*) FROM store_meta")[0][0])

    # -- what is pending, kept in `queue_load` so the caps cost two key lookups, not a scan of
    # the queue inside the transaction every arrival waits on. Every write transaction is
    # serialised (see the dialects' _write), so the counts cannot drift by a race; each open
    # recounts them from the rows anyway (an operator's hand edit, an older bluegreen).
    def _recount(self, run: Any) -> None:
        run("DELETE FROM queue_load")
        run(
            "INSERT INTO queue_load (client, pending, bytes) SELECT client, COUNT(*), SUM(size)"
            " FROM intents WHERE state = 'pending' GROUP BY client"
        )
        run(
            "INSERT INTO queue_load (client, pending, bytes) SELECT ?, COUNT(*),"
            " COALESCE(SUM(size), 0) FROM intents WHERE state = 'pending'",
            (TOTAL,),
        )

    def _load(self, run: Any, rows: list[tuple], sign: int) -> None:
        """Count `rows` ((client, size) of intents that became pending, or left it) in."""
        for client, size in rows:
            for who in (client, TOTAL):
                run(
                    "INSERT INTO queue_load (client, pending, bytes) VALUES (?, ?, ?)"
                    " ON CONFLICT (client) DO UPDATE SET pending = queue_load.pending +"
                    " excluded.pending, bytes = queue_load.bytes + excluded.bytes",
                    (who, sign, sign * size),
                )
            if sign < 0:  # a client with nothing pending leaves no row behind
                run("DELETE FROM queue_load WHERE client = ? AND pending <= 0", (client,))

    # -- sealing
    def _seal(self, aad: bytes, values: dict[str, str]) -> bytes:
        if self._aead is None:
            raise StoreError("the store was opened without its key: nothing can be sealed")
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, json.dumps(values).encode(), aad)

    def _open(self, receipt: str, aad: bytes, blob: bytes | None) -> dict[str, str]:
        # Every row is sealed, even with no header to hide: a row without a seal that opens was
        # not written by a queue service holding the key.
        if self._aead is None:
            raise StoreError("the store was opened without its key: nothing can be opened")
        if not blob:
            raise Unopened(f"intent {receipt} has no seal: it was not written by the queue")
        blob = bytes(blob)
        try:
            plain = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise Unopened(
                f"the sealed headers of intent {receipt} do not open: its method, path, body, "
                "key or client was changed after it was accepted; never sent"
            ) from None
        return json.loads(plain)

    def _intent(self, row: tuple, strict: bool = True) -> Intent:
        receipt, seq, client, key, method, path, headers, sealed, body, digest = row[:10]
        at, attempts, state, st, err, first_failed = row[10:]
        clear = json.loads(headers)
        try:
            if hashlib.sha256(bytes(body)).hexdigest() != digest:
                raise Unopened(
                    f"the body of intent {receipt} does not match its digest: the row was changed "
                    "after it was accepted; never sent"
                )
            bad = sorted(set(clear) - set(CLEAR_HEADERS))
            if bad:
                raise Unopened(
                    f"intent {receipt} holds {', '.join(bad)} in clear, which the queue always "
                    "seals: the row was changed after it was accepted; never sent"
                )
            opened = self._open(receipt, _aad(receipt, method, path, digest, key, client), sealed)
        except Unopened:
            if strict:
                raise
            opened = {}
        return Intent(
            receipt=receipt,
            seq=seq,
            key=key,
            method=method,
            path=path,
            headers={**clear, **opened},
            body=bytes(body),
            received_at=at,
            attempts=attempts,
            state=state,
            last_status=st,
            last_error=err,
            client=client,
            first_failed_at=first_failed,
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
        client: str = "",
    ) -> Accepted:
        """Keep one write of `client` (see client_id). The same key again gets the first receipt,
        so a client retrying never queues a write twice. The caps are checked inside the write
        transaction, which every edge sharing the store takes in turn: two edges cannot both
        take the last place."""
        digest = hashlib.sha256(body).hexdigest()
        receipt = "r-" + secrets.token_hex(8)
        clear, sealed = kept_headers(headers)
        blob = self._seal(_aad(receipt, method, path, digest, key, client), sealed)
        clear_text = json.dumps(clear)
        size = len(body) + len(clear_text) + len(blob)
        with self._write(arrival=True) as run:
            first = run(
                "SELECT receipt, seq, method, path, body_sha256 FROM intents"
                " WHERE client = ? AND idem_key = ?",
                (client, key),
            ).fetchone()
            if first is None:
                self._check_room(run, client, size)
                rows = run(
                    "INSERT INTO intents (receipt, client, idem_key, method, path, headers,"
                    " sealed, body, body_sha256, size, received_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
                    (receipt, client, key, method, path, clear_text, blob, body, digest, size, now),
                ).fetchall()  # all, so no statement is left open when the transaction commits
                self._load(run, [(client, size)], +1)
                return Accepted(receipt, rows[0][0], duplicate=False)
        if tuple(first[2:]) != (method, path, digest):
            raise KeyReused(
                f"Idempotency-Key {key!r} was first used for {first[2]} {first[3]} with another "
                "body; a key names one request"
            )
        return Accepted(first[0], first[1], duplicate=True)

    def _check_room(self, run: Any, client: str, size: int) -> None:
        lim = self.limits
        load = {
            who: (int(n), int(b))
            for who, n, b in run(
                "SELECT client, pending, bytes FROM queue_load WHERE client IN (?, ?)",
                (TOTAL, client),
            ).fetchall()
        }
        count, total = load.get(TOTAL, (0, 0))
        mine = load.get(client, (0, 0))[0]
        if count + 1 > lim.max_pending:
            raise QueueFull(
                "queue-full",
                f"the queue holds {count} pending writes, its most ({lim.max_pending})",
            )
        if total + size > lim.max_pending_bytes:
            raise QueueFull(
                "queue-full",
                f"the queue holds {total} bytes of pending writes; this one ({size} bytes) would "
                f"pass its most ({lim.max_pending_bytes} bytes)",
            )
        if mine + 1 > lim.max_per_client:
            raise QueueFull(
                "client-full",
                f"this client has {mine} pending writes, the most one client may have "
                f"({lim.max_per_client})",
            )
        problem = self._space_problem(size)
        if problem:
            raise QueueFull("disk-full", problem)

    def pending(self, limit: int = 100) -> list[Intent]:
        """The oldest `limit` intents waiting, in arrival order: the replay's next round. A row
        whose seal does not open is made a dead letter saying why, and is never returned."""
        rows = self._query(
            f"SELECT {COLUMNS} FROM intents WHERE state = 'pending' ORDER BY seq LIMIT ?",
            (limit,),
        )
        found: list[Intent] = []
        for row in rows:
            try:
                found.append(self._intent(row))
            except Unopened as exc:
                self.failed(row[0], None, str(exc), dead=True)
        return found

    def dead_letters(self) -> list[Intent]:
        rows = self._query(f"SELECT {COLUMNS} FROM intents WHERE state = 'dead' ORDER BY seq")
        return [self._intent(r, strict=False) for r in rows]

    # -- the replay's claim
    #
    # One lease row for the whole store, not FOR UPDATE SKIP LOCKED on intents: row locks would
    # let a second replayer take a client's next intent while the first still sends its previous
    # one (order lost), hold a transaction open across an HTTP send, and do nothing for SQLite.
    # One holder at a time keeps arrival order for every client on both databases; the fence
    # (bumped at each takeover) stops a replayer that lost its lease from marking rows.
    def claim(self, holder: str, ttl: float, fence: int | None = None) -> int | None:
        """Take or renew the replay claim for `ttl` seconds: its fence, or None while another
        holder's claim runs. A claim past its expiry is anyone's: a killed replayer's is taken
        over when it expires."""
        with self._write(arrival=True) as run:
            row = run(
                f"SELECT holder, expires - ({self.now_sql}), fence FROM replay_claim WHERE id = 1"
            ).fetchone()
            if row is None:
                run(
                    f"INSERT INTO replay_claim (id, holder, expires, fence)"
                    f" VALUES (1, ?, ({self.now_sql}) + ?, 1)",
                    (holder, ttl),
                )
                return 1
            current, left, current_fence = row
            if current == holder and current_fence == fence and left > 0:
                run(
                    f"UPDATE replay_claim SET expires = ({self.now_sql}) + ? WHERE id = 1",
                    (ttl,),
                )
                return fence
            if left > 0 and current != holder:
                return None
            run(
                f"UPDATE replay_claim SET holder = ?, expires = ({self.now_sql}) + ?,"
                " fence = fence + 1 WHERE id = 1",
                (holder, ttl),
            )
            return int(current_fence) + 1

    def release(self, holder: str, fence: int) -> None:
        """Give the claim up now (a clean stop): another replayer need not wait for it to expire."""
        with self._write() as run:
            run(
                "UPDATE replay_claim SET expires = 0 WHERE id = 1 AND holder = ? AND fence = ?",
                (holder, fence),
            )

    _FENCED = " AND EXISTS (SELECT 1 FROM replay_claim WHERE id = 1 AND fence = ?)"

    def delivered(
        self, receipt: str, status: int, now: float | None = None, fence: int | None = None
    ) -> bool:
        """Mark one intent delivered; with `fence`, only while that claim is still the current
        one. False when it was not marked (the claim was taken over)."""
        sql = (
            "UPDATE intents SET state = 'delivered', attempts = attempts + 1,"
            " last_status = ?, last_error = NULL, delivered_at = ?"
            " WHERE receipt = ? AND state = 'pending'"
        )
        params: tuple = (status, time.time() if now is None else now, receipt)
        if fence is not None:
            sql, params = sql + self._FENCED, (*params, fence)
        with self._write() as run:
            rows = run(sql + " RETURNING client, size", params).fetchall()
            self._load(run, rows, -1)
            return bool(rows)

    def failed(
        self,
        receipt: str,
        status: int | None,
        error: str,
        dead: bool,
        now: float | None = None,
        fence: int | None = None,
    ) -> bool:
        """Count one failed attempt; `dead` moves the intent to the dead-letter list. The first
        of a run of failures is remembered: how long a write has been tried decides when a
        transient failure gives up."""
        sql = (
            "UPDATE intents SET attempts = attempts + 1, last_status = ?, last_error = ?,"
            " first_failed_at = COALESCE(first_failed_at, ?),"
            " state = CASE WHEN ? = 1 THEN 'dead' ELSE state END"
            " WHERE receipt = ? AND state = 'pending'"
        )
        params: tuple = (status, error, time.time() if now is None else now, int(dead), receipt)
        if fence is not None:
            sql, params = sql + self._FENCED, (*params, fence)
        with self._write() as run:
            rows = run(sql + " RETURNING client, size", params).fetchall()
            if dead:
                self._load(run, rows, -1)
            return bool(rows)

    def retry(self, receipt: str | None = None) -> int:
        """Put one dead intent (or all) back in the queue, with fresh attempts. Its seq stays,
        so the next replay takes it in arrival order among the ones still waiting."""
        sql = (
            "UPDATE intents SET state = 'pending', attempts = 0, first_failed_at = NULL"
            " WHERE state = 'dead'"
        )
        params: tuple = ()
        if receipt is not None:
            sql, params = sql + " AND receipt = ?", (receipt,)
        with self._write() as run:
            rows = run(sql + " RETURNING client, size", params).fetchall()
            self._load(run, rows, +1)
            return len(rows)

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


SERIAL_SQLITE = "INTEGER PRIMARY KEY AUTOINCREMENT"
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


def open_store(spec: str, key: bytes | None, limits: Limits | None = None) -> IntentStore:
    """`sqlite:///abs/path/intents.sqlite3` (one host) or a `postgresql://` DSN (several).
    Without `key`, only what is not sealed can be read (`has_rows`, `counts`)."""
    if spec.startswith("sqlite://"):
        path = spec[len("sqlite://") :]
        if not os.path.isabs(path):
            raise StoreError(f"the SQLite store needs an absolute path, got {spec!r}")
        return SqliteStore(path, key, limits)
    if spec.startswith(("postgresql://", "postgres://")):
        return PostgresStore(spec, key, limits)
    raise StoreError(
        "the intent store must be sqlite:///absolute/path or a postgresql:// DSN, "
        f"got {spec.split('://')[0]!r}"
    )


def open_keyed(spec: str, key_path: str, limits: Limits | None = None) -> IntentStore:
    """The store at `spec` with the key at `key_path`. A key is created only for a store that
    holds nothing sealed yet: a new key for a store with rows would make every row unreadable,
    so then the missing key is an error naming its path."""
    if not os.path.exists(key_path):
        bare = open_store(spec, None, limits)
        try:
            if bare.has_rows():
                raise StoreError(
                    f"no key file at {os.path.abspath(key_path)}, but the intent store holds "
                    "intents sealed with a key: restore that key file (a new key would make "
                    "every kept write unreadable)"
                )
        finally:
            bare.close()
    return open_store(spec, load_key(key_path, create=True), limits)


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
