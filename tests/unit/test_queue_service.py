"""The queue service as a real process on loopback (`python -m bluegreen.queue_service`), with its
SQLite store, in front of a stand-in edge that serves the status document and records what is
replayed to it. What a client and an operator notice: receipts, refusals, intents kept across a
kill -9, replay in arrival order once each, dead letters, credentials never in clear on disk."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bluegreen import intents, probe
from tests.support.sandbox import ROOT, free_ports


class Edge:
    """A stand-in edge: `/_bluegreen/status` says whether writes are open; every other request
    is recorded and answered with `answers.get(path, 200)`."""

    def __init__(self, port: int) -> None:
        self.maintenance: dict | None = {"status": 503}
        self.answers: dict[str, int] = {}
        self.seen: list[dict] = []
        edge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = json.dumps({"maintenance": edge.maintenance}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                edge.seen.append(
                    {
                        "path": self.path,
                        "key": self.headers.get("Idempotency-Key"),
                        "replay": self.headers.get("X-Bluegreen-Replay"),
                        "auth": self.headers.get("Authorization"),
                        "body": body,
                    }
                )
                status = edge.answers.get(self.path.split("?")[0], 200)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def queue(tmp_path):
    edge_port, port = free_ports(2)
    edge = Edge(edge_port)
    store = tmp_path / "queue" / "intents.sqlite3"
    key = tmp_path / "queue" / "intents.key"
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bluegreen.queue_service",
                f"--listen=127.0.0.1:{port}",
                f"--store=sqlite:///{store}",
                f"--key-file={key}",
                f"--edge={edge.url}",
                "--max-body-kb=1",
                "--soak=0.3",
                "--poll=0.05",
                "--attempts=3",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        answer = probe.wait_until(
            f"http://127.0.0.1:{port}/_bluegreen/queue/health", lambda a: a.status == 200, 10
        )[0]
        assert answer.status == 200, proc.stdout.read() if proc.poll() is not None else answer
        return proc

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

        def store(self) -> intents.IntentStore:
            return intents.open_store(f"sqlite:///{store}", intents.load_key(str(key)))

    yield Queue()
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
    edge.stop()


def wait_for(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
def test_nothing_over_http_but_intake_and_health(queue):
    assert probe.request(queue.url + "/_bluegreen/queue/retry", method="POST").status == 404
    assert probe.request(queue.url + "/anything").status == 404
    assert probe.request(queue.url + "/orders", method="HEAD").status == 405


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
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


def test_a_world_readable_store_is_refused(tmp_path):
    key = tmp_path / "k"
    intents.load_key(str(key))
    os.chmod(key, 0o644)
    with pytest.raises(intents.StoreError):
        intents.load_key(str(key))
