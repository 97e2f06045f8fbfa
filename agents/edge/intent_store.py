"""The intent store's rules and queries, shared by both databases: a write kept (with the
caps), what is pending, the replay's claim, and a row's life (pending, delivered, dead).

A write the edge would refuse while read-only is kept here instead, keyed by its
`Idempotency-Key`: one row per intent, in arrival order (`seq`), with a receipt the client was
given. Both dialects (sqlite_store.py, postgres_store.py) run this same SQL (placeholders and two
column types aside), so the two cannot drift apart; a dialect supplies the connection, how a
write transaction is taken and the database's clock. The tables and the reading of a row are in
intent_rows.py, the sealing in sealing.py.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from agents.edge.intent_rows import COLUMNS, STATES, TOTAL, read_row
from agents.edge.intent_types import (
    Accepted,
    Intent,
    KeyReused,
    Limits,
    QueueFull,
    StoreError,
    Unopened,
)
from agents.edge.sealing import Sealer, bound_to, kept_headers


class IntentStore:
    """What both databases share: every query, the sealing, the rules. A dialect supplies the
    connection, the placeholder, how a write transaction is taken and the database's clock."""

    placeholder = "?"
    now_sql = "0"
    """The database's clock, in epoch seconds: every edge sharing a store reads the same one."""

    def __init__(self, key: bytes | None, limits: Limits | None = None) -> None:
        self._sealer = Sealer(key)
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
        if not self._sealer.keyed:
            return
        check = self._sealer.key_check()
        with self._write(arrival=True) as run:
            run(
                "INSERT INTO store_meta (name, value) VALUES ('key-check', ?)"
                " ON CONFLICT (name) DO NOTHING",
                (check,),
            )
        [(blob,)] = self._query("SELECT value FROM store_meta WHERE name = 'key-check'")
        self._sealer.check(bytes(blob))

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
        blob = self._sealer.seal(bound_to(receipt, method, path, digest, key, client), sealed)
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
                found.append(read_row(self._sealer, row))
            except Unopened as exc:
                self.failed(row[0], None, str(exc), dead=True)
        return found

    def dead_letters(self) -> list[Intent]:
        rows = self._query(f"SELECT {COLUMNS} FROM intents WHERE state = 'dead' ORDER BY seq")
        return [read_row(self._sealer, r, strict=False) for r in rows]

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
