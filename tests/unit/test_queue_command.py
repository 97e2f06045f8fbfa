"""`bluegreen queue` and the queue's lines in `bluegreen status`, on a real SQLite store laid out
as the local edge's queue service lays it out."""

from __future__ import annotations

import time

import pytest

from agents.edge import intents
from bluegreen.config import Queue
from cutover import queue
from cutover.results import Outcome


@pytest.fixture
def edge(tmp_path):
    where = queue.Where("live", str(tmp_path), Queue(paths=("/orders",)))
    files = intents.local_files(str(tmp_path))
    store = intents.open_keyed(files.store, files.key)
    for i, key in enumerate(("a", "b", "c")):
        store.accept(
            key, "POST", f"/orders/{i}", {"Authorization": "Bearer s3cret"}, b"{}", time.time()
        )
    pending = store.pending()
    store.delivered(pending[0].receipt, 200)
    store.failed(pending[1].receipt, 400, "no such order", dead=True)
    store.close()
    return where, pending


def run(where, *argv) -> tuple[Outcome, list[str]]:
    said: list[str] = []
    action, receipt, every = (list(argv) + [None, None])[:2] + [False]
    if receipt == "--all":
        receipt, every = None, True
    return queue.run(where, action, receipt, every, said.append).outcome, said


def test_status_counts_and_names_the_dead_letters_without_their_credentials(edge):
    where, pending = edge
    lines = queue.status_lines(where)
    assert lines[0] == "maintenance queue: 1 pending, 1 delivered, 1 dead"
    assert pending[1].receipt in lines[2] and "POST /orders/1" in lines[2]
    assert "answered 400: no such order after 1 attempt(s)" in lines[2]
    assert "s3cret" not in "\n".join(lines)


def test_retry_puts_a_dead_letter_back_and_drop_refuses_a_pending_one(edge):
    where, pending = edge
    outcome, said = run(where, "retry", pending[1].receipt)
    assert outcome is Outcome.DONE and said[0].startswith("1 dead letter(s) put back")
    assert queue.status_lines(where)[0] == "maintenance queue: 2 pending, 1 delivered, 0 dead"
    outcome, said = run(where, "drop", pending[2].receipt)
    assert outcome is Outcome.BAD_INPUT and pending[2].receipt in said[0]
    assert queue.status_lines(where)[0] == "maintenance queue: 2 pending, 1 delivered, 0 dead"


def test_drop_gives_up_a_dead_letter(edge):
    where, pending = edge
    assert run(where, "drop", pending[1].receipt) == (
        Outcome.DONE,
        [f"{pending[1].receipt} dropped"],
    )
    assert queue.status_lines(where)[0] == "maintenance queue: 1 pending, 1 delivered, 0 dead"
    outcome, said = run(where, "list")
    assert outcome is Outcome.DONE and said[0] == "1 pending, 1 delivered, 0 dead"


def test_an_edge_without_a_queue_says_so(tmp_path):
    where = queue.Where("live", str(tmp_path))
    assert queue.status_lines(where) == []
    outcome, said = run(where, "list")
    assert outcome is Outcome.UNREACHABLE and "bluegreen:maintenanceQueue is not set" in said[0]
