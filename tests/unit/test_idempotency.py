"""The reference service's memory of writes is bounded and keeps "once" within it
(app/idempotency.py): a key that cannot be remembered is refused before it is applied."""

from __future__ import annotations

import threading

import pytest

from app.idempotency import ClientFull, Full, Journal, Replays, valid_key

ANSWER = (200, {"accepted": "POST"})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(replays: Replays, scoped, answer=ANSWER):
    """One write through the store, as the service does it: (applied?, the answer)."""
    with replays.hold(scoped) as slot:
        if slot.first is not None:
            return False, slot.first
        if answer[0] < 300:
            slot.keep(answer)
        return True, answer


def test_a_key_is_applied_once_and_another_clients_same_key_is_its_own_write():
    replays = Replays(max_keys=10, retention_s=60)
    assert write(replays, ("alice", "k1")) == (True, ANSWER)
    assert write(replays, ("alice", "k1"), (200, {"other": 1})) == (False, ANSWER)
    assert write(replays, ("bob", "k1")) == (True, ANSWER)
    assert len(replays) == 2


def test_a_new_key_is_refused_when_every_place_holds_a_key_still_in_its_time():
    clock = Clock()
    replays = Replays(max_keys=2, retention_s=60, clock=clock)
    write(replays, ("c", "a"))
    clock.now += 30
    write(replays, ("c", "b"))
    with pytest.raises(Full):
        write(replays, ("c", "c"))
    assert write(replays, ("c", "a")) == (False, ANSWER), "a kept key is still answered"
    clock.now += 31  # a's time is up, b's is not
    assert write(replays, ("c", "c")) == (True, ANSWER)
    with pytest.raises(Full):
        write(replays, ("c", "d"))
    assert write(replays, ("c", "b")) == (False, ANSWER)
    clock.now += 30  # b's time is up too
    assert write(replays, ("c", "a"))[0], "forgotten after its retention: applied again"


def test_one_client_fills_its_own_share_and_others_still_get_places():
    clock = Clock()
    replays = Replays(max_keys=10, retention_s=60, max_per_client=3, clock=clock)
    for i in range(3):
        write(replays, ("flooder", f"k{i}"))
    with pytest.raises(ClientFull):
        write(replays, ("flooder", "k3"))
    assert write(replays, ("flooder", "k0")) == (False, ANSWER), "its kept keys still answer"
    for i in range(3):
        assert write(replays, (f"user{i}", "order-1"))[0]
    with pytest.raises(ClientFull):  # whatever its write would answer: no place to keep it
        write(replays, ("flooder", "failed"), (500, {}))
    clock.now += 61
    assert write(replays, ("flooder", "k3"))[0], "places come back as keys expire"
    assert replays.clients() == 1, "a client holding nothing costs nothing"


def test_a_key_whose_time_is_up_is_renewed_as_the_newest():
    clock = Clock()
    replays = Replays(max_keys=2, retention_s=60, clock=clock)
    write(replays, ("c", "a"))
    clock.now += 10
    write(replays, ("c", "b"))
    clock.now += 55  # a expired, b has 5 s left
    assert write(replays, ("c", "a"))[0]  # kept again, now the newest
    clock.now += 10  # b expired, a has 50 s left
    assert write(replays, ("c", "new"))[0]
    assert write(replays, ("c", "a")) == (False, ANSWER)


def test_writes_in_flight_hold_their_places_and_a_write_that_failed_frees_its_own():
    replays = Replays(max_keys=2, retention_s=60)
    inside, leave = threading.Event(), threading.Event()

    def slow():
        with replays.hold(("c", "slow")) as slot:
            inside.set()
            leave.wait(5)
            slot.keep(ANSWER)

    t = threading.Thread(target=slow)
    t.start()
    inside.wait(5)
    assert write(replays, ("c", "failed"), (500, {"error": "x"}))[0]  # not kept
    assert replays.clients() == 1
    assert write(replays, ("c", "fast"))[0]
    with pytest.raises(Full):  # fast kept + slow reserved: both places taken
        write(replays, ("c", "third"))
    leave.set()
    t.join(5)
    assert len(replays) == 2


def test_a_replay_arriving_during_the_first_write_waits_for_its_answer():
    replays = Replays(max_keys=4, retention_s=60)
    inside, leave = threading.Event(), threading.Event()
    seen = []

    def first():
        with replays.hold(("c", "k")) as slot:
            inside.set()
            leave.wait(5)
            slot.keep(ANSWER)

    def replay():
        seen.append(write(replays, ("c", "k"), (200, {"second": True})))

    a = threading.Thread(target=first)
    a.start()
    inside.wait(5)
    b = threading.Thread(target=replay)
    b.start()
    b.join(0.2)
    assert b.is_alive() and not seen, "the replay must wait for the first write"
    leave.set()
    a.join(5)
    b.join(5)
    assert seen == [(False, ANSWER)]


def test_no_lock_is_left_behind_for_keys_no_write_is_using():
    replays = Replays(max_keys=10_000, retention_s=60)
    for i in range(5000):
        write(replays, ("c", f"k{i}"))
    assert replays.locks_held() == 0
    with pytest.raises(Full):
        Replays(max_keys=0, retention_s=60).hold(("c", "k")).__enter__()


def test_the_journal_keeps_the_last_entries_and_counts_what_it_let_go():
    journal = Journal(max_entries=3)
    for i in range(5):
        journal.add({"key": f"k{i}"})
    entries, dropped = journal.read()
    assert [e["key"] for e in entries] == ["k2", "k3", "k4"] and dropped == 2


@pytest.mark.parametrize(
    "key, valid",
    [("order-1", True), ("x" * 255, True), ("", False), ("x" * 256, False), ("a b", False)],
)
def test_keys_are_what_the_edges_queue_takes(key, valid):
    assert valid_key(key) is valid
