"""The maintenance queue for the operator: `bluegreen queue` (list, retry, drop) and the queue's
lines in `bluegreen status`.

They act on the intent store itself (the SQLite file in the edge's run directory, or the
PostgreSQL database of bluegreen:maintenanceQueueDsn), never through the edge: nothing the edge
serves lets a client replay, retry or drop an intent. The queue service replays what is pending
once writes are open; `retry` puts a dead letter back in its place in arrival order, `drop`
gives one up for good.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field

from agents.edge import intents
from bluegreen import config
from cutover.results import Outcome, Report

SHOWN = 10
"""Dead letters `bluegreen status` lists; `bluegreen queue` lists them all."""


class NoStore(RuntimeError):
    """The edge has no maintenance queue, or its store is not reachable from here."""


@dataclass(frozen=True)
class Where:
    """Where the edge stack keeps its write intents, from its config."""

    stack: str
    run_dir: str = ""
    queue: config.Queue = field(default_factory=config.Queue)
    dsn: str | None = field(default=None, repr=False)
    """The PostgreSQL store's DSN (a secret), when the queue keeps intents there."""


def open_for(edge: Where) -> intents.IntentStore:
    """The edge's intent store, as the queue service opens it."""
    if not edge.queue.enabled:
        raise NoStore(
            f'the edge stack "{edge.stack}" keeps no write intents: bluegreen:maintenanceQueue '
            "is not set"
        )
    files = intents.local_files(edge.run_dir)
    if edge.queue.store == "postgresql":
        spec = edge.dsn or ""
    else:
        spec = files.store
        if not os.path.exists(files.store_path):
            raise NoStore(
                f"no intent store at {files.store_path} on this host: the queue service creates "
                "it on the edge host; run bluegreen there"
            )
    return intents.open_store(spec, intents.load_key(files.key))


def _line(i: intents.Intent) -> str:
    d = intents.describe(i)
    failed = f"answered {d['last_status']}" if d.get("last_status") else "no answer"
    why = f": {d['last_error']}" if d.get("last_error") else ""
    return (
        f"  {d['receipt']}  #{d['seq']} {d['method']} {d['path']}  key {d['key']}  "
        f"received {d['received_at']}  {failed}{why} after {d['attempts']} attempt(s)"
    )


def status_lines(edge: Where) -> list[str]:
    """What `bluegreen status` says of the queue: counts, and the dead letters to act on."""
    if not edge.queue.enabled:
        return []
    try:
        with closing(open_for(edge)) as store:
            counts, dead = store.counts(), store.dead_letters()
    except (NoStore, intents.StoreError) as err:
        return [f"maintenance queue: {err}"]
    lines = [
        f"maintenance queue: {counts['pending']} pending, {counts['delivered']} delivered, "
        f"{counts['dead']} dead"
    ]
    if dead:
        lines.append(
            "dead letters (bluegreen queue retry RECEIPT|--all, bluegreen queue drop RECEIPT):"
        )
        lines += [_line(i) for i in dead[:SHOWN]]
        if len(dead) > SHOWN:
            lines.append(f"  ... and {len(dead) - SHOWN} more: bluegreen queue")
    return lines


def run(edge: Where, action: str, receipt: str | None, every: bool, out: Callable) -> Report:
    """`bluegreen queue ACTION`: list, retry RECEIPT|--all, drop RECEIPT."""
    try:
        store = open_for(edge)
    except (NoStore, intents.StoreError) as err:
        out(f"bluegreen queue: {err}")
        return Report(Outcome.UNREACHABLE, str(err))
    with closing(store):
        if action == "list":
            counts = store.counts()
            out(
                f"{counts['pending']} pending, {counts['delivered']} delivered, "
                f"{counts['dead']} dead"
            )
            for title, found in (("pending", store.pending(1000)), ("dead", store.dead_letters())):
                if found:
                    out(f"{title}:")
                    for i in found:
                        out(_line(i))
            return Report(Outcome.DONE)
        if action == "retry":
            moved = store.retry(None if every else receipt)
            out(
                f"{moved} dead letter(s) put back in arrival order; the queue service replays "
                "them while writes are open"
            )
            if moved or every:
                return Report(Outcome.DONE)
            return Report(Outcome.BAD_INPUT, f"no dead letter {receipt}")
        try:
            dropped = store.drop(receipt or "")
        except intents.StoreError as err:
            out(f"bluegreen queue: {err}")
            return Report(Outcome.BAD_INPUT, str(err))
        out(f"{receipt} dropped" if dropped else f"bluegreen queue: no dead letter {receipt}")
        if not dropped:
            return Report(Outcome.BAD_INPUT, f"no dead letter {receipt}")
        return Report(Outcome.DONE)
