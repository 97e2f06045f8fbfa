"""Writes across a cutover as nginx serves them: the writer lease, the maintenance window's status
document and page with Retry-After counting down, and keyed writes diverted to the queue service
during maintenance. A real nginx with njs (`render_local`, `switch_state`) in front of two real
arms; the queue service is a stand-in HTTP server here that records what reaches it (the real
one has its own tests and the e2e test of tests/e2e/test_maintenance_queue.py)."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bluegreen import nginx
from bluegreen.config import Queue, Window
from tests.support.mocks import maintenance
from tests.support.sandbox import free_ports


class Intake:
    """A stand-in queue service: answers 202 with a receipt and records each request."""

    def __init__(self, port: int) -> None:
        self.seen: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _take(self):
                length = int(self.headers.get("Content-Length") or 0)
                outer.seen.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": self.rfile.read(length),
                    }
                )
                body = json.dumps({"status": "queued", "receipt": "r-1"}).encode()
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_PUT = do_PATCH = do_DELETE = _take

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def edge_with(start):  # noqa: F811 (test_switch's fixture, under a name of this file's)
    return start


def doc(edge, path: str, method: str = "GET"):
    status, headers, body = edge.get(path, method=method)
    return status, headers, json.loads(body) if body.startswith(b"{") else body


def lease(fence: int, since: float = 0.0) -> nginx.Lease:
    return nginx.Lease(fence=fence, since=since, handover=5)


def test_the_lease_follows_the_pointer_and_nobody_holds_it_while_writes_are_frozen(edge_with):
    edge = edge_with()
    status, headers, body = doc(edge, nginx.LEASE_PATH)
    assert status == 200 and headers["cache-control"] == "no-store"
    assert (body["holder"], body["fence"], body["handover"]) == ("blue", 1, 5)
    assert abs(body["now"] - time.time()) < 5

    # `since` is when this edge began serving fence 2, by its own clock, not what the state
    # says (the operator's clock before the switch).
    before = time.time()
    edge.point("green", lease=lease(2, since=1234.5))
    body = doc(edge, nginx.LEASE_PATH)[2]
    assert (body["holder"], body["fence"]) == ("green", 2)
    assert before - 1 <= body["since"] <= time.time() + 1

    edge.point("green", lease=lease(2), maintenance=maintenance())
    assert doc(edge, nginx.LEASE_PATH)[2]["holder"] is None, "writes are frozen"


def test_nothing_the_edge_serves_changes_its_state(edge_with):
    """The lease and the status are read-only, and nothing under /_bluegreen/ reaches an arm."""
    edge = edge_with()
    before = open(os.path.join(edge.run, "switch.json")).read()
    for path in (nginx.LEASE_PATH, nginx.STATUS_PATH, nginx.STATUS_PATH + ".html"):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert edge.get(path, method=method)[0] == 405, (method, path)
    for path in ("/_bluegreen/queue", "/_bluegreen/replay", "/_bluegreen/lease/steal"):
        status, headers, _ = edge.get(path, method="POST")
        assert status == 404 and "x-bluegreen-color" not in headers, path
    assert open(os.path.join(edge.run, "switch.json")).read() == before
    assert doc(edge, nginx.LEASE_PATH)[2]["holder"] == "blue"


def _utc(seconds: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)


def test_a_planned_window_is_announced_before_it_starts(edge_with):
    edge = edge_with()
    begin, end = _utc(3600), _utc(5400)
    edge.point("blue", maintenance=maintenance(enabled=False, window=Window(begin, end)))
    status, _, body = doc(edge, nginx.STATUS_PATH)
    assert status == 200 and body["readOnly"] is False and body["maintenance"] is None
    assert body["window"] == {
        "start": begin.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "phase": "planned",
    }
    assert body["live"] == {"color": "blue", "version": "v1", "weights": {"blue": 100, "green": 0}}
    assert edge.get("/orders", method="POST")[0] == 200, "writes stay open until it starts"
    page = edge.get(nginx.STATUS_PATH + ".html")[2].decode()
    assert "Maintenance planned" in page and begin.strftime("%Y-%m-%dT%H:%M:%SZ") in page


def test_retry_after_counts_down_to_the_planned_end(edge_with):
    edge = edge_with()
    end = _utc(120)
    on = maintenance(window=Window(_utc(-60), end), banner="Upgrading the <db> & more")
    edge.point("blue", maintenance=on)
    status, headers, body = doc(edge, "/orders", method="POST")
    assert status == 503
    first = int(headers["retry-after"])
    assert 100 < first <= 120, "counts down to the end, not the configured 30 s"
    assert body["retryAfter"] == first and body["until"] == end.strftime("%Y-%m-%dT%H:%M:%SZ")
    time.sleep(2.1)
    assert int(edge.get("/orders", method="POST")[1]["retry-after"]) < first
    status, _, body = doc(edge, nginx.STATUS_PATH)
    assert body["readOnly"] is True and body["window"]["phase"] == "in-progress"
    assert body["maintenance"]["banner"] == "Upgrading the <db> & more"
    page = edge.get(nginx.STATUS_PATH + ".html")[2].decode()
    assert "Upgrading the &lt;db&gt; &amp; more" in page and "<db>" not in page


def test_past_its_end_the_window_overruns_with_the_configured_retry_after(edge_with):
    edge = edge_with()
    edge.point("blue", maintenance=maintenance(window=Window(_utc(-600), _utc(-60))))
    status, headers, body = doc(edge, "/orders", method="POST")
    assert (status, headers["retry-after"], body["retryAfter"]) == (503, "30", 30)
    assert "until" not in body
    assert doc(edge, nginx.STATUS_PATH)[2]["window"]["phase"] == "overrunning"


QUEUE = Queue(paths=("/orders",), max_body_kb=1)


@pytest.fixture
def queued(edge_with):
    (port,) = free_ports(1)
    intake = Intake(port)
    edge = edge_with(queue=QUEUE, queue_listen=f"127.0.0.1:{port}")
    yield edge, intake
    intake.stop()


def test_keyed_writes_to_queued_paths_reach_the_queue_service_during_maintenance(queued):
    edge, intake = queued
    edge.point("blue", maintenance=maintenance(queue=QUEUE))
    key = {"Idempotency-Key": "order-17", "Authorization": "Bearer s3cret"}
    status, headers, raw = edge.get("/orders/17?rush=1", method="POST", headers=key)
    assert status == 202 and json.loads(raw)["receipt"] == "r-1"
    assert int(headers["retry-after"]) == 30
    (seen,) = intake.seen
    assert (seen["method"], seen["path"], seen["body"]) == ("POST", "/orders/17?rush=1", b"{}")
    assert seen["headers"]["idempotency-key"] == "order-17"
    assert seen["headers"]["x-bluegreen-retry-after"] == "30"

    # Refused as without a queue: no key, another path; reads are served by the arm.
    assert edge.get("/orders/18", method="POST")[0] == 503
    assert edge.get("/cart", method="POST", headers=key)[0] == 503
    assert edge.get("/ordersx", method="POST", headers=key)[0] == 503
    assert edge.get("/orders/17")[0] == 200
    assert len(intake.seen) == 1


def test_a_body_over_the_cap_is_refused_before_the_queue(queued):
    edge, intake = queued
    edge.point("blue", maintenance=maintenance(queue=QUEUE))
    conn = edge.connection()
    conn.request("POST", "/orders", body=b"x" * 4096, headers={"Idempotency-Key": "big"})
    assert conn.getresponse().status == 413
    conn.close()
    assert intake.seen == []


def test_with_the_queue_service_down_a_keyed_write_is_refused_not_lost(queued):
    edge, intake = queued
    intake.stop()
    edge.point("blue", maintenance=maintenance(queue=QUEUE))
    status, headers, raw = edge.get("/orders/1", method="POST", headers={"Idempotency-Key": "k"})
    assert status == 503 and headers["retry-after"] == "30"
    assert json.loads(raw)["error"] == "maintenance"


def test_outside_maintenance_keyed_writes_go_to_the_arm(queued):
    edge, intake = queued
    status, headers, _ = edge.get("/orders/1", method="POST", headers={"Idempotency-Key": "k"})
    assert (status, headers["x-bluegreen-color"]) == (200, "blue")
    assert intake.seen == []
