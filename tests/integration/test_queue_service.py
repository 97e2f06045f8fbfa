"""The queue service as a real process on loopback (`python -m agents.edge.queue_service`), with its
SQLite store, in front of a stand-in edge that serves the status document and records what is
replayed to it. What a client and an operator notice: receipts, refusals, intents kept across a
kill -9, replay in arrival order once each, dead letters, credentials never in clear on disk."""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agents.edge import intents
from bluegreen import probe
from tests.support.sandbox import ROOT, free_ports


class Edge:
    """A stand-in edge: `/_bluegreen/status` says whether writes are open; every other request
    is recorded and answered with `answers.get(path, 200)`. Like the reference arm, it applies a
    client's Idempotency-Key once (`applied`), however often it is sent."""

    def __init__(self, port: int) -> None:
        self.maintenance: dict | None = {"status": 503}
        self.answers: dict[str, int] = {}
        self.seen: list[dict] = []
        self.polls: list[str | None] = []
        """The X-Bluegreen-Probe of each status poll."""
        self.applied: list[tuple[str | None, str | None]] = []
        """(Authorization or Cookie, Idempotency-Key) of each write applied, in order, once."""
        edge = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                edge.polls.append(self.headers.get(probe.PROBE_HEADER))
                body = json.dumps({"maintenance": edge.maintenance}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen = {
                    "path": self.path,
                    "key": self.headers.get("Idempotency-Key"),
                    "replay": self.headers.get("X-Bluegreen-Replay"),
                    "auth": self.headers.get("Authorization"),
                    "probe": self.headers.get(probe.PROBE_HEADER),
                    "body": body,
                }
                status = edge.answers.get(self.path.split("?")[0], 200)
                with lock:
                    edge.seen.append(seen)
                    who = seen["auth"] or self.headers.get("Cookie")
                    scoped = (who, seen["key"])
                    if 200 <= status < 300 and scoped not in edge.done:
                        edge.done.add(scoped)
                        edge.applied.append(scoped)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.done: set[tuple] = set()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


BASE_ARGS = ["--max-body-kb=1", "--soak=0.3", "--poll=0.05"]


def start_service(
    procs: list[subprocess.Popen], port: int, store: str, key, edge_url: str, *extra: str
) -> subprocess.Popen:
    """`python -m agents.edge.queue_service` on `port`, once its health check answers; added to
    `procs` first, so that it is stopped however the start ends."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agents.edge.queue_service",
            f"--listen=127.0.0.1:{port}",
            f"--store={store}",
            f"--key-file={key}",
            f"--edge={edge_url}",
            *BASE_ARGS,
            *extra,
        ],
        cwd=ROOT,
        # A file, not a pipe: a pipe nobody reads fills up and blocks the service's logging.
        stdout=(log := tempfile.TemporaryFile("w+")),
        stderr=subprocess.STDOUT,
        text=True,
    )
    proc.log = log  # type: ignore[attr-defined]
    procs.append(proc)
    answer = probe.wait_until(
        f"http://127.0.0.1:{port}/_bluegreen/queue/health", lambda a: a.status is not None, 10
    )[0]
    assert answer.status == 200, output(proc) if proc.poll() is not None else answer
    return proc


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.log.close()  # type: ignore[attr-defined]


def output(proc: subprocess.Popen) -> str:
    """What a service started by `start_service` has logged so far."""
    proc.log.seek(0)  # type: ignore[attr-defined]
    return proc.log.read()  # type: ignore[attr-defined]


@pytest.fixture
def make_queue(tmp_path):
    """Queue services, each on its own SQLite store, with extra command-line flags."""
    procs: list[subprocess.Popen] = []
    edges: list[Edge] = []

    def make(*extra: str):
        edge_port, port = free_ports(2)
        edge = Edge(edge_port)
        edges.append(edge)
        where = tmp_path / f"q{len(edges)}"
        store = where / "queue" / "intents.sqlite3"
        key = where / "queue" / "intents.key"

        def start() -> subprocess.Popen:
            return start_service(procs, port, f"sqlite:///{store}", key, edge.url, *extra)

        class Queue:
            url = f"http://127.0.0.1:{port}"

            def __init__(self):
                self.edge, self.store_path, self.key_path = edge, store, key
                self.proc = start()

            def restart(self) -> None:
                self.proc = start()

            def post(self, path, key=None, body=b"{}", headers=None) -> probe.Answer:
                sent = {"Content-Type": "application/json", **(headers or {})}
                if key is not None:
                    sent["Idempotency-Key"] = key
                return probe.request(self.url + path, method="POST", headers=sent, body=body)

            def health(self) -> probe.Answer:
                return probe.request(self.url + "/_bluegreen/queue/health")

            def store(self) -> intents.IntentStore:
                return intents.open_store(f"sqlite:///{store}", intents.load_key(str(key)))

        return Queue()

    yield make
    stop(procs)
    for edge in edges:
        edge.stop()


@pytest.fixture
def queue(make_queue):
    return make_queue()


def wait_for(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_a_keyed_write_gets_a_receipt_and_the_same_key_the_same_receipt(queue):
    first = queue.post("/orders/1", "k-1", headers={"X-Bluegreen-Retry-After": "42"})
    assert first.status == 202
    body = first.json()
    assert (body["status"], body["idempotencyKey"], body["retryAfter"]) == ("queued", "k-1", 42)
    assert first.headers["x-bluegreen-receipt"] == body["receipt"]
    again = queue.post("/orders/1", "k-1")
    assert (again.status, again.json()["receipt"]) == (202, body["receipt"])
    assert again.headers["idempotent-replayed"] == "true"
    reused = queue.post("/orders/1", "k-1", body=b'{"other": 1}')
    assert reused.status == 422 and reused.json()["error"] == "idempotency-key reused"
    with contextlib.closing(queue.store()) as store:
        assert store.counts()["pending"] == 1


@pytest.mark.parametrize(
    ("key", "body", "status", "says"),
    [
        (None, b"{}", 400, "Idempotency-Key"),
        ("has space", b"{}", 400, "Idempotency-Key"),
        ("k" * 256, b"{}", 400, "Idempotency-Key"),
        ("big", b"x" * 2048, 413, "at most 1 KiB"),
    ],
)
def test_what_the_queue_does_not_keep_is_refused_and_nothing_is_stored(
    queue, key, body, status, says
):
    answer = queue.post("/orders/1", key, body=body)
    assert answer.status == status and says in answer.json()["message"]
    with contextlib.closing(queue.store()) as store:
        assert store.counts() == {"pending": 0, "delivered": 0, "dead": 0}


def test_nothing_over_http_but_intake_and_health(queue):
    assert probe.request(queue.url + "/_bluegreen/queue/retry", method="POST").status == 404
    assert probe.request(queue.url + "/anything").status == 404
    assert probe.request(queue.url + "/orders", method="HEAD").status == 405


def test_accepted_intents_survive_a_kill_and_keep_their_order(queue):
    receipts = [queue.post(f"/orders/{i}", f"k-{i}").json()["receipt"] for i in range(20)]
    queue.proc.send_signal(signal.SIGKILL)
    queue.proc.wait()
    queue.restart()
    receipts += [queue.post(f"/orders/{i}", f"k-{i}").json()["receipt"] for i in range(20, 30)]
    with contextlib.closing(queue.store()) as store:
        pending = store.pending(100)
    assert [i.receipt for i in pending] == receipts
    assert [i.key for i in pending] == [f"k-{i}" for i in range(30)]


def test_once_writes_open_the_intents_are_replayed_in_order_once_each(queue):
    secret = "Bearer s3cret-t0ken"
    for i in range(10):
        assert queue.post(f"/orders/{i}", f"k-{i}", headers={"Authorization": secret}).status == 202
    time.sleep(0.5)
    assert queue.edge.seen == [], "nothing is replayed while the edge is in maintenance"
    raw = b"".join(p.read_bytes() for p in queue.store_path.parent.iterdir() if p.is_file())
    assert secret.encode() not in raw, "a credential is on disk in clear"
    queue.edge.maintenance = None
    assert wait_for(lambda: len(queue.edge.seen) >= 10)
    time.sleep(0.5)
    seen = queue.edge.seen
    assert [s["key"] for s in seen] == [f"k-{i}" for i in range(10)]
    assert all(s["auth"] == secret and s["replay"].startswith("r-") for s in seen)
    with contextlib.closing(queue.store()) as store:
        assert store.counts() == {"pending": 0, "delivered": 10, "dead": 0}


def test_a_refused_replay_is_a_dead_letter_the_operator_retries_or_drops(queue):
    queue.edge.answers = {"/orders/bad": 400, "/orders/gone": 404}
    for path, key in (("/orders/1", "a"), ("/orders/bad", "b"), ("/orders/gone", "c")):
        queue.post(path, key)
    queue.post("/orders/2", "d")
    queue.edge.maintenance = None
    assert wait_for(lambda: len(queue.edge.seen) >= 4)
    with contextlib.closing(queue.store()) as store:
        assert wait_for(lambda: store.counts() == {"pending": 0, "delivered": 2, "dead": 2})
        dead = store.dead_letters()
        assert [(d.key, d.last_status) for d in dead] == [("b", 400), ("c", 404)]
        queue.edge.answers = {}
        assert store.retry(dead[0].receipt) == 1
        assert wait_for(lambda: store.counts()["delivered"] == 3)
        assert store.drop(dead[1].receipt) is True
        assert store.counts() == {"pending": 0, "delivered": 3, "dead": 0}
    assert [s["key"] for s in queue.edge.seen] == ["a", "b", "c", "d", "b"]


def test_a_transient_failure_is_retried_and_holds_back_the_later_ones(queue):
    queue.edge.answers = {"/orders/1": 503}
    queue.post("/orders/1", "first")
    queue.post("/orders/2", "second")
    queue.edge.maintenance = None
    assert wait_for(lambda: len(queue.edge.seen) >= 2)
    assert {s["key"] for s in queue.edge.seen} == {"first"}, "order: the second waits"
    queue.edge.answers = {}
    assert wait_for(lambda: [s["key"] for s in queue.edge.seen][-1:] == ["second"])
    keys = [s["key"] for s in queue.edge.seen]
    assert keys[-2:] == ["first", "second"] and "second" not in keys[:-1]


def test_a_full_queue_a_full_client_share_or_a_full_disk_is_a_503_with_retry_after(make_queue):
    queue = make_queue("--max-pending=4", "--max-per-client=2")
    alice, bob, carol = ({"Authorization": f"Bearer {who}"} for who in ("alice", "bob", "carol"))
    retry = {"X-Bluegreen-Retry-After": "17"}
    assert [queue.post("/orders", f"a{i}", headers=alice).status for i in range(2)] == [202, 202]
    full = queue.post("/orders", "a2", headers={**alice, **retry})
    assert (full.status, full.headers["retry-after"]) == (503, "17")
    assert full.json()["error"] == "client-full" and "(2)" in full.json()["message"]
    assert queue.post("/orders", "a0", headers=alice).status == 202, "a retry keeps its receipt"
    assert [queue.post("/orders", f"b{i}", headers=bob).status for i in range(2)] == [202, 202]
    full = queue.post("/orders", "c0", headers=carol)
    assert full.status == 503 and full.json()["error"] == "queue-full"
    assert int(full.headers["retry-after"]) >= 1
    small = make_queue("--max-pending-mb=1", "--max-body-kb=512")
    big = b"x" * 400_000
    statuses = [small.post("/o", f"k{i}", body=big).status for i in range(3)]
    assert statuses == [202, 202, 503]
    assert small.post("/o", "k3", body=b"x" * 100_000).status == 202, "what still fits"
    disk = make_queue("--min-free-mb=100000000")  # more than any test machine's disk has free
    answer = disk.post("/orders", "k")
    assert answer.status == 503 and answer.json()["error"] == "disk-full"
    assert "MiB free" in answer.json()["message"] and "retry-after" in answer.headers
    for q, pending in ((queue, 4), (disk, 0)):
        with contextlib.closing(q.store()) as store:
            assert store.counts()["pending"] == pending


def test_idempotency_keys_are_each_clients_own(queue):
    alice, bob = {"Authorization": "Bearer alice"}, {"Authorization": "Bearer bob"}
    a = queue.post("/orders", "same", headers=alice)
    b = queue.post("/orders", "same", body=b'{"other": 1}', headers=bob)
    c = queue.post("/orders", "same", body=b'{"third": 1}', headers={"Cookie": "sid=c"})
    d = queue.post("/orders", "same", body=b'{"anon": 1}')  # the peer's address: 127.0.0.1
    receipts = [x.json()["receipt"] for x in (a, b, c, d)]
    assert [x.status for x in (a, b, c, d)] == [202] * 4 and len(set(receipts)) == 4
    again = queue.post("/orders", "same", headers=alice)
    assert (again.status, again.json()["receipt"]) == (202, receipts[0])
    assert queue.post("/orders", "same", body=b"changed", headers=bob).status == 422
    queue.edge.maintenance = None
    assert wait_for(lambda: len(queue.edge.applied) == 4)
    assert sorted(queue.edge.applied, key=str) == sorted(
        [("Bearer alice", "same"), ("Bearer bob", "same"), ("sid=c", "same"), (None, "same")],
        key=str,
    )


def test_a_row_changed_under_a_sealed_credential_is_a_dead_letter_never_sent(queue):
    victim = {
        "Authorization": "Bearer victim-t0ken",
        "X-Tenant": "tenant-secret-42",
        "User-Agent": "shop-app/1.0",
    }
    assert queue.post("/orders/1", "pay", body=b'{"qty": 1}', headers=victim).status == 202
    assert queue.post("/orders/2", "ok", headers=victim).status == 202
    assert queue.post("/orders/3", "moved", headers={"Authorization": "Bearer x"}).status == 202
    raw = b"".join(p.read_bytes() for p in queue.store_path.parent.iterdir() if p.is_file())
    assert b"tenant-secret-42" not in raw and b"victim-t0ken" not in raw
    assert b"shop-app/1.0" in raw  # on the allow-list: stored in clear
    db = sqlite3.connect(queue.store_path)
    with db:
        db.execute(
            "UPDATE intents SET method = 'DELETE', path = '/admin/users',"
            " body = X'7B7D', body_sha256 = ? WHERE idem_key = 'pay'",
            (hashlib.sha256(b"{}").hexdigest(),),
        )
        # a victim's seal moved onto another row does not open there either
        db.execute(
            "UPDATE intents SET sealed = (SELECT sealed FROM intents WHERE idem_key = 'ok')"
            " WHERE idem_key = 'moved'"
        )
    db.close()
    queue.edge.maintenance = None
    assert wait_for(lambda: len(queue.edge.applied) == 1)
    time.sleep(0.5)
    assert [s["key"] for s in queue.edge.seen] == ["ok"]
    assert queue.edge.seen[0]["auth"] == "Bearer victim-t0ken"
    with contextlib.closing(queue.store()) as store:
        dead = {d.key: d.last_error for d in store.dead_letters()}
    assert set(dead) == {"pay", "moved"}
    assert all("changed after it was accepted; never sent" in why for why in dead.values())


def test_a_store_error_in_the_replay_is_logged_shown_by_health_and_recovered(queue):
    queue.post("/orders/1", "first")
    db = sqlite3.connect(queue.store_path)
    db.execute("ALTER TABLE replay_claim RENAME TO replay_claim_away")
    queue.edge.maintenance = None
    try:
        assert wait_for(lambda: queue.health().status == 503, 10)
        failing = queue.health().json()
        assert failing["status"] == "failing" and "replay_claim" in failing["error"]
        assert queue.post("/orders/2", "second").status == 202, "intake still keeps writes"
    finally:
        db.execute("ALTER TABLE replay_claim_away RENAME TO replay_claim")
        db.close()
    assert wait_for(lambda: queue.health().status == 200, 15)
    assert wait_for(lambda: [k for _, k in queue.edge.applied] == ["first", "second"])
    out = output(queue.proc)
    assert "replay failed:" in out and "replay works again" in out


def test_a_missing_key_is_created_only_for_an_empty_store(queue):
    queue.post("/orders/1", "k")
    queue.proc.send_signal(signal.SIGTERM)
    queue.proc.wait(10)
    queue.key_path.unlink()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agents.edge.queue_service",
            f"--listen=127.0.0.1:{free_ports(1)[0]}",
            f"--store=sqlite:///{queue.store_path}",
            f"--key-file={queue.key_path}",
            f"--edge={queue.edge.url}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 2 and f"no key file at {queue.key_path}" in proc.stderr
    assert not queue.key_path.exists(), "no new key was made for a store with rows"


def test_transient_failures_are_retried_for_the_horizon_then_dead_saying_how_long(make_queue):
    queue = make_queue("--retry-horizon=2")
    queue.edge.answers = {"/orders/1": 503}
    queue.post("/orders/1", "slow")
    queue.edge.maintenance = None
    assert wait_for(lambda: queue.edge.seen, 5)
    started = time.monotonic()
    with contextlib.closing(queue.store()) as store:
        assert wait_for(lambda: store.counts()["dead"] == 1, 10)
        waited = time.monotonic() - started
        [dead] = store.dead_letters()
    tried = float(dead.last_error.split()[3])
    assert waited >= 1.5 and 2.0 <= tried < 3.0 and dead.attempts >= 5
    assert dead.last_error.startswith("gave up after ") and "horizon is 2 s" in dead.last_error


def test_the_probe_token_goes_on_polls_and_replays_and_is_read_again_when_it_changes(
    make_queue, tmp_path
):
    token = tmp_path / "probe-token"
    token.write_text("t-one\n")
    queue = make_queue(f"--probe-token-file={token}")
    queue.post("/orders/1", "a")
    assert wait_for(lambda: queue.edge.polls[-1:] == ["t-one"])
    token.write_text("t-two-longer\n")
    assert wait_for(lambda: queue.edge.polls[-1:] == ["t-two-longer"])
    queue.edge.maintenance = None
    assert wait_for(lambda: queue.edge.seen)
    assert (queue.edge.seen[0]["probe"], queue.edge.seen[0]["replay"][:2]) == ("t-two-longer", "r-")
    queue.edge.maintenance = {"status": 503}
    token.unlink()
    queue.edge.polls.clear()
    assert wait_for(lambda: len(queue.edge.polls) >= 3)
    assert set(queue.edge.polls[-2:]) == {None}, "no file: sent without"


def test_two_replayers_on_one_postgres_store_apply_each_intent_once_in_order_per_client(
    postgres_dsn, tmp_path
):
    import psycopg

    edge_port, *ports = free_ports(3)
    edge = Edge(edge_port)
    key = tmp_path / "queue" / "intents.key"
    procs: list[subprocess.Popen] = []
    try:
        services = [
            start_service(procs, port, postgres_dsn, key, edge.url, "--claim-seconds=1.5")
            for port in ports
        ]
        sent: list[tuple[str, str]] = []
        for i in range(1000):  # five clients, both edges taking writes in turn
            who, k = f"Bearer client-{i % 5}", f"k-{i}"
            answer = probe.request(
                f"http://127.0.0.1:{ports[i % 2]}/orders/{i}",
                method="POST",
                headers={"Authorization": who, "Idempotency-Key": k},
                body=b"{}",
            )
            assert answer.status == 202, answer
            sent.append((who, k))
        edge.maintenance = None
        assert wait_for(lambda: len(edge.applied) >= 300, 20)
        with psycopg.connect(postgres_dsn) as db:
            (holder,) = db.execute("SELECT holder FROM replay_claim").fetchone()
        [killed] = [p for p in services if p.pid == int(holder.split(":")[1])]
        killed.send_signal(signal.SIGKILL)  # mid-round: maybe between a send and its mark
        killed.wait(5)
        assert wait_for(lambda: len(edge.applied) >= 1000, 20), len(edge.applied)
        time.sleep(0.3)
        assert sorted(edge.applied) == sorted(sent), "every intent applied, each once"
        for client in {who for who, _ in sent}:
            mine = [k for who, k in sent if who == client]
            assert [k for who, k in edge.applied if who == client] == mine, "order per client"
        sends = [(s["auth"], s["key"]) for s in edge.seen]
        assert len(sends) - len(sent) <= 1, "at most the one in flight at the kill, sent again"
        assert list(dict.fromkeys(sends)) == sent, "one replayer at a time: arrival order"
        with contextlib.closing(intents.open_store(postgres_dsn, intents.load_key(str(key)))) as s:
            assert s.counts() == {"pending": 0, "delivered": 1000, "dead": 0}
    finally:
        stop(procs)
        edge.stop()
