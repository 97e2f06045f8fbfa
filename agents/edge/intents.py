"""The durable store of writes queued during maintenance, replayed when it ends: each sent at least
once, applied once by the arm's Idempotency-Key dedupe.

A write the edge would refuse while read-only is kept here instead, keyed by its
`Idempotency-Key`: one row per intent, in arrival order (`seq`), with a receipt the client was
given. SQLite serves one edge host; PostgreSQL serves edges on several hosts sharing one queue.
Both run the same SQL (placeholders and two column types aside), so the two cannot drift apart.

Every header but a few harmless ones (sealing.CLEAR_HEADERS) is needed again on replay and may
carry a credential, so it is kept sealed with AES-256-GCM, bound to the row's receipt, method,
path, body, key and client: a copy of the store or a dump alone does not leak them, and a row
changed under a victim's sealed credentials does not open (it is a dead letter, never sent).

This module is the store's front door: it opens a store (open_store, open_keyed), names a
client (client_id), shows an intent (describe) and places the files of an edge host
(local_files), and it carries the names the queue service, the replay, the program and the
tooling use (`intents.StoreError`, `intents.IntentStore`, ...). They are made in:

    intent_types.py    the errors, the caps (Limits), an Intent and the answer to one
    sealing.py         which headers are sealed, the key file, AES-256-GCM and what it binds
    intent_rows.py     the tables, and a row read back as an Intent
    intent_store.py    every query and rule both databases share (IntentStore)
    sqlite_store.py    the SQLite dialect (one host)
    postgres_store.py  the PostgreSQL dialect (several hosts)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from agents.edge.intent_store import IntentStore
from agents.edge.intent_types import (
    Accepted,
    Intent,
    KeyReused,
    Limits,
    QueueFull,
    StoreError,
    Unopened,
)
from agents.edge.postgres_store import PostgresStore
from agents.edge.sealing import load_key, owner_only
from agents.edge.sqlite_store import SqliteStore

__all__ = [
    "Accepted",
    "Intent",
    "IntentStore",
    "KeyReused",
    "Limits",
    "LocalFiles",
    "QueueFull",
    "StoreError",
    "Unopened",
    "client_id",
    "describe",
    "load_key",
    "local_files",
    "open_keyed",
    "open_store",
    "owner_only",
]


def client_id(headers: Mapping[str, str], peer: str) -> str:
    """Who sent a write, as a digest: of its Authorization, else its Cookie, else the address it
    came from. Idempotency keys are the client's own: one client's key cannot reach another's
    receipt, nor be refused because another used it."""
    low = {k.lower(): v for k, v in headers.items()}
    for name in ("authorization", "cookie"):
        if low.get(name):
            return hashlib.sha256(f"{name}:{low[name]}".encode()).hexdigest()
    return hashlib.sha256(f"peer:{peer}".encode()).hexdigest()


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
