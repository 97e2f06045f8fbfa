"""The intent store (agents/edge/intents.py) on a SQLite file and on a real PostgreSQL server:
what a client and an operator notice: receipts, order, once-only, dead letters, sealed
credentials, owner-only files."""

from __future__ import annotations

import json
import threading
import time

import pytest

from agents.edge import intents
from tests.support.intents_cases import KEY, TOKEN, put


def test_a_key_seen_again_gets_the_first_receipt_and_a_reused_key_is_refused(store):
    first = put(store, "k1")
    again = put(store, "k1")
    assert (again.receipt, again.seq, again.duplicate) == (first.receipt, first.seq, True)
    assert not first.duplicate and first.receipt.startswith("r-") and len(first.receipt) == 18
    with pytest.raises(intents.KeyReused, match="k1"):
        put(store, "k1", body=b'{"qty": 2}')
    with pytest.raises(intents.KeyReused):
        put(store, "k1", path="/orders/7")
    assert store.counts() == {"pending": 1, "delivered": 0, "dead": 0}


def test_pending_come_in_arrival_order_with_their_headers_and_body(store):
    for i in range(5):
        put(
            store,
            f"k{i}",
            body=b"%d" % i,
            path=f"/orders?n={i}",
            headers={
                "Content-Type": "application/json",
                "Authorization": TOKEN,
                "X-Request-Id": f"req-{i}",
                "X-Bluegreen-Retry-After": "30",
                "Connection": "keep-alive",
                "Host": "shop.example.com",
                "Accept": "*/*",
            },
        )
    got = store.pending()
    assert [i.key for i in got] == [f"k{i}" for i in range(5)]
    assert [i.seq for i in got] == sorted(i.seq for i in got)
    assert got[3].body == b"3" and got[3].path == "/orders?n=3" and got[3].method == "POST"
    assert got[3].headers == {
        "content-type": "application/json",
        "authorization": TOKEN,
        "x-request-id": "req-3",
        "accept": "*/*",
    }
    assert [i.key for i in store.pending(limit=2)] == ["k0", "k1"]


def test_delivered_leave_the_queue_and_failures_count_until_dead(store):
    a, b, c = (put(store, k) for k in "abc")
    store.delivered(a.receipt, 201)
    store.failed(b.receipt, 503, "edge answered 503", dead=False)
    assert [(i.receipt, i.attempts, i.last_status) for i in store.pending()] == [
        (b.receipt, 1, 503),
        (c.receipt, 0, None),
    ]
    store.failed(b.receipt, 400, "bad request", dead=True)
    [dead] = store.dead_letters()
    assert (dead.receipt, dead.attempts, dead.last_error, dead.state) == (
        b.receipt,
        2,
        "bad request",
        "dead",
    )
    assert store.counts() == {"pending": 1, "delivered": 1, "dead": 1}
    # A delivered write's key still answers with its receipt: a late client retry is not a
    # second order.
    assert put(store, "a").receipt == a.receipt


def test_retry_puts_a_dead_letter_back_in_its_arrival_order_and_drop_only_takes_dead_ones(store):
    a, b, c = (put(store, k) for k in "abc")
    store.failed(a.receipt, 400, "bad", dead=True)
    store.failed(b.receipt, 400, "bad", dead=True)
    with pytest.raises(intents.StoreError, match="pending, not dead"):
        store.drop(c.receipt)
    assert store.retry(a.receipt) == 1
    assert [i.receipt for i in store.pending()] == [a.receipt, c.receipt]
    assert store.pending()[0].attempts == 0
    assert store.drop(b.receipt) is True
    assert store.drop(b.receipt) is False
    assert store.dead_letters() == []
    assert store.counts() == {"pending": 2, "delivered": 0, "dead": 0}
    store.failed(a.receipt, 500, "x", dead=True)
    store.failed(c.receipt, 500, "x", dead=True)
    assert store.retry() == 2


def test_pending_survive_closing_and_reopening(spec):
    first = intents.open_store(spec, KEY)
    accepted = [put(first, f"k{i}", headers={"Cookie": "sid=s3cr3t"}) for i in range(3)]
    first.close()
    again = intents.open_store(spec, KEY)
    try:
        got = again.pending()
        assert [i.receipt for i in got] == [a.receipt for a in accepted]
        assert got[0].headers == {"cookie": "sid=s3cr3t"}
    finally:
        again.close()


def test_sealed_headers_do_not_open_with_another_key(spec):
    s = intents.open_store(spec, KEY)
    put(s, "k", headers={"X-Api-Key": "abc"})
    s.close()
    # Refused at open, before any row is read: a wrong key never makes rows dead letters.
    with pytest.raises(intents.StoreError, match="does not open this intent store"):
        intents.open_store(spec, bytes(32))


class OrderWatch(threading.Thread):
    """Reads the queue over and over on its own connection while others write, as the replay
    does: a seq that shows up below one already seen is a write the replay would pass over."""

    def __init__(self, spec: str) -> None:
        super().__init__()
        self.store = intents.open_store(spec, KEY)
        self.done = threading.Event()
        self.late: list[int] = []
        self.reads = 0

    def run(self) -> None:
        known: set[int] = set()
        top = 0
        try:
            while not self.done.is_set():
                seen = {i.seq for i in self.store.pending(limit=100_000)}
                self.late += sorted(s for s in seen - known if s < top)
                known |= seen
                top = max(seen, default=top)
                self.reads += 1
        finally:
            self.store.close()


def test_concurrent_accepts_get_strictly_increasing_seq_and_no_duplicates(spec):
    s = intents.open_store(spec, KEY)
    results: dict[int, list[intents.Accepted]] = {}

    def worker(t: int) -> None:
        results[t] = [put(s, f"t{t}-{i}", body=b"%d" % i) for i in range(200)]

    # Every thread also races the others for one shared key: one wins, all get its receipt.
    shared: list[intents.Accepted] = []
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    threads += [threading.Thread(target=lambda: shared.append(put(s, "same"))) for _ in range(8)]
    watch = OrderWatch(spec)
    watch.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    watch.done.set()
    watch.join()
    try:
        assert watch.reads > 1 and watch.late == []
        assert len({a.receipt for a in shared}) == 1
        assert sum(not a.duplicate for a in shared) == 1
        for got in results.values():
            seqs = [a.seq for a in got]
            assert seqs == sorted(seqs) and len(set(seqs)) == 200  # each thread's own order
        pending = s.pending(limit=10_000)
        assert len(pending) == 8 * 200 + 1
        assert len({i.receipt for i in pending}) == len(pending)
        seqs = [i.seq for i in pending]
        assert seqs == sorted(set(seqs))
    finally:
        s.close()


def test_two_edge_hosts_sharing_postgres_keep_one_receipt_per_key_and_arrival_order(postgres_dsn):
    hosts = [intents.open_store(postgres_dsn, KEY) for _ in range(2)]
    got: dict[int, list[intents.Accepted]] = {0: [], 1: []}

    def edge(h: int) -> None:
        for i in range(150):
            # Both hosts get every client's retry of "shared-i"; each also has its own keys.
            got[h].append(put(hosts[h], f"shared-{i}", body=b"%d" % i))
            got[h].append(put(hosts[h], f"host{h}-{i}", body=b"%d" % i))

    threads = [threading.Thread(target=edge, args=(h,)) for h in range(2)]
    watch = OrderWatch(postgres_dsn)
    watch.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    watch.done.set()
    watch.join()
    try:
        assert watch.reads > 1 and watch.late == []
        for i in range(150):
            a, b = got[0][2 * i], got[1][2 * i]
            assert a.receipt == b.receipt and a.duplicate != b.duplicate
        pending = hosts[0].pending(limit=10_000)
        assert len(pending) == 150 * 3
        for h in range(2):
            mine = [a.seq for a in got[h] if not a.duplicate]
            assert mine == sorted(mine)  # what one host accepted replays in its order
        assert [i.seq for i in pending] == sorted({i.seq for i in pending})
    finally:
        for s in hosts:
            s.close()


def test_the_caps_refuse_past_the_queue_its_bytes_and_a_clients_share(spec):
    limits = intents.Limits(max_pending=5, max_pending_bytes=5_000, max_per_client=3)
    s = intents.open_store(spec, KEY, limits)
    try:
        for i in range(3):
            s.accept(f"a{i}", "POST", "/o", {}, b"{}", 1.0, client="alice")
        with pytest.raises(intents.QueueFull, match=r"this client has 3 pending") as full:
            s.accept("a3", "POST", "/o", {}, b"{}", 1.0, client="alice")
        assert full.value.reason == "client-full"
        assert s.accept("a0", "POST", "/o", {}, b"{}", 1.0, client="alice").duplicate
        s.accept("b0", "POST", "/o", {}, b"{}", 1.0, client="bob")
        with pytest.raises(intents.QueueFull, match="bytes") as full:
            s.accept("b1", "POST", "/o", {}, b"x" * 9_000, 1.0, client="bob")
        assert full.value.reason == "queue-full"
        s.accept("b1", "POST", "/o", {}, b"{}", 1.0, client="bob")
        with pytest.raises(intents.QueueFull, match=r"5 pending writes, its most \(5\)"):
            s.accept("c0", "POST", "/o", {}, b"{}", 1.0, client="carol")
        [first] = s.pending(1)
        s.delivered(first.receipt, 200)  # delivered ones leave room
        s.accept("c0", "POST", "/o", {}, b"{}", 1.0, client="carol")
        assert s.counts() == {"pending": 5, "delivered": 1, "dead": 0}
    finally:
        s.close()


def test_two_edge_hosts_racing_for_the_last_places_never_pass_the_cap(postgres_dsn):
    limits = intents.Limits(max_pending=50, max_per_client=50)
    hosts = [intents.open_store(postgres_dsn, KEY, limits) for _ in range(2)]
    took: list[int] = [0, 0]

    def edge(h: int) -> None:
        for i in range(40):
            try:
                hosts[h].accept(f"h{h}-{i}", "POST", "/o", {}, b"{}", 1.0, client="c")
                took[h] += 1
            except intents.QueueFull:
                pass

    threads = [threading.Thread(target=edge, args=(h,)) for h in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sum(took) == 50 and hosts[0].counts()["pending"] == 50
    finally:
        for s in hosts:
            s.close()


def test_keys_are_scoped_per_client(store):
    a = store.accept("k", "POST", "/o", {}, b"1", 1.0, client="alice")
    b = store.accept("k", "PUT", "/p", {}, b"2", 1.0, client="bob")
    assert a.receipt != b.receipt and not b.duplicate
    with pytest.raises(intents.KeyReused):
        store.accept("k", "POST", "/o", {}, b"changed", 1.0, client="bob")
    assert store.accept("k", "POST", "/o", {}, b"1", 1.0, client="alice").receipt == a.receipt
    assert intents.client_id({"Authorization": "x", "Cookie": "y"}, "1.2.3.4") == (
        intents.client_id({"authorization": "x"}, "5.6.7.8")
    )
    ids = {
        intents.client_id(h, peer)
        for h, peer in (({"Cookie": "y"}, "p"), ({}, "1.2.3.4"), ({}, "5.6.7.8"))
    }
    assert len(ids) == 3


def test_every_header_off_the_allow_list_is_sealed_and_a_changed_row_is_a_dead_letter(spec):
    s = intents.open_store(spec, KEY)
    headers = {"Authorization": TOKEN, "X-Tenant": "t-9", "Accept-Language": "fr"}
    try:
        victim = s.accept("pay", "POST", "/orders", headers, b'{"qty": 1}', 1.0, client="v")
        other = s.accept("other", "POST", "/orders", {"Authorization": "B"}, b"{}", 1.0, client="o")
        ok = s.accept("ok", "POST", "/orders", headers, b"{}", 1.0, client="v")
        raw = s._query("SELECT headers FROM intents WHERE receipt = ?", (victim.receipt,))
        assert json.loads(raw[0][0]) == {"accept-language": "fr"}
        with s._write() as run:
            run("UPDATE intents SET method = 'DELETE' WHERE receipt = ?", (victim.receipt,))
            run(
                "UPDATE intents SET sealed = (SELECT sealed FROM intents WHERE receipt = ?)"
                " WHERE receipt = ?",
                (ok.receipt, other.receipt),
            )
        assert [i.key for i in s.pending()] == ["ok"]
        assert s.pending()[0].headers == {
            "authorization": TOKEN,
            "x-tenant": "t-9",
            "accept-language": "fr",
        }
        dead = {d.key: d for d in s.dead_letters()}
        assert set(dead) == {"pay", "other"}
        assert "changed after it was accepted; never sent" in dead["pay"].last_error
        assert dead["pay"].headers == {"accept-language": "fr"}, "listed without its secrets"
        # A credential slipped into the clear headers is not replayed either, nor a new body.
        late = s.accept("late", "POST", "/orders", headers, b'{"qty": 1}', 1.0, client="v")
        with s._write() as run:
            run(
                "UPDATE intents SET headers = ? WHERE receipt = ?",
                (json.dumps({"authorization": "Bearer attacker"}), ok.receipt),
            )
            run("UPDATE intents SET body = ? WHERE receipt = ?", (b'{"qty": 99}', late.receipt))
        assert s.pending() == [] and s.counts()["dead"] == 4
        assert "does not match its digest" in s.dead_letters()[-1].last_error
    finally:
        s.close()


def test_one_replay_claim_at_a_time_taken_over_when_it_expires_and_fenced(spec):
    s = intents.open_store(spec, KEY)
    try:
        a, b = put(s, "a"), put(s, "b")
        fence = s.claim("one", 0.5)
        assert fence == 1 and s.claim("two", 0.5) is None
        assert s.claim("one", 0.5, fence) == fence, "the holder renews"
        time.sleep(0.6)
        taken = s.claim("two", 5.0)
        assert taken == 2 and s.claim("one", 0.5, fence) is None
        assert s.delivered(a.receipt, 200, fence=fence) is False, "a stale holder marks nothing"
        assert s.failed(b.receipt, 503, "x", dead=False, fence=fence) is False
        assert s.delivered(a.receipt, 200, fence=taken) is True
        s.release("two", taken)
        assert s.claim("one", 0.5) == 3, "a released claim is free at once"
        assert [i.key for i in s.pending()] == ["b"] and s.pending()[0].attempts == 0
    finally:
        s.close()


@pytest.fixture(params=["sqlite", "postgres"])
def spec(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/queue/intents.sqlite3"
    return request.getfixturevalue("postgres_dsn")


@pytest.fixture
def store(spec):
    s = intents.open_store(spec, KEY)
    yield s
    s.close()
