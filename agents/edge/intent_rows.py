"""The intent store's tables, and a row read back as the intent it keeps.

Both dialects create the same tables (SCHEMA, with their own serial and blob types): `intents`,
one row per kept write in arrival order (`seq`), with its receipt, its clear and sealed headers and
its state; `replay_claim`, the one lease row of the replay; `queue_load`, what is pending per
client and in all (the caps read it); `store_meta`, the key check.
"""

from __future__ import annotations

import hashlib
import json

from agents.edge.intent_types import Intent, Unopened
from agents.edge.sealing import CLEAR_HEADERS, Sealer, bound_to

STATES = ("pending", "delivered", "dead")
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


def read_row(sealer: Sealer, row: tuple, strict: bool = True) -> Intent:
    """A row of COLUMNS as the Intent the replay sends, its sealed headers opened. A row changed
    after it was accepted raises Unopened; with `strict` off it is read with nothing opened (the
    dead-letter list shows it, never sends it)."""
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
        aad = bound_to(receipt, method, path, digest, key, client)
        opened = sealer.open(receipt, aad, sealed)
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
