"""The edge as the trust boundary, with a real nginx and njs: a request is bluegreen's own only
when its X-Bluegreen-Probe is the edge's probe token; every other X-Bluegreen-* request header a
client sends is replaced by the edge's own before an arm or the queue service sees it; an arm's
`/_arm/` documents are not served; queued writes have a per-client limit of their own."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bluegreen import nginx, nginx_conf, probe
from bluegreen.config import Backpressure, Cache, Queue, Shadow
from cutover.sources.access_log import AccessLogSource
from platforms.local.edge_files import served, write_state
from platforms.local.nginx_binary import js_module
from tests.support.edge import OWN, TOKEN, Edge
from tests.support.mocks import maintenance
from tests.support.sandbox import free_ports

FORGED = {name: "forged" for name in probe.REQUEST_HEADERS}
"""A client's try at every X-Bluegreen-* header bluegreen sends in requests."""
OFF = Backpressure(0, 0, 0, 1, "always", 300)
QUEUE = Queue(paths=("/orders",), rate=2, burst=0, connections=4)
"""The edge in front of two real arms (app/server.py), no limits, cache nor shadow unless told."""


class Recorder(ThreadingHTTPServer):
    """A stand-in arm (or queue service) that keeps the headers of every request it gets."""

    daemon_threads = True

    def __init__(self, color: str, status: int = 200) -> None:
        self.color, self.status, self.seen = color, status, []
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def bluegreen_headers(self) -> list[dict[str, str]]:
        return [{k: v for k, v in h.items() if k.startswith("x-bluegreen-")} for h in self.seen]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: object) -> None:
        pass

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        server: Recorder = self.server  # type: ignore[assignment]
        server.seen.append({k.lower(): v for k, v in self.headers.items()})
        body = b"{}"
        self.send_response(server.status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Bluegreen-Color", server.color)
        self.send_header("X-Bluegreen-Version", {"blue": "v1", "green": "v2"}.get(server.color, ""))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _record


@pytest.fixture
def recorded(tmp_path):
    """nginx as `render_local` renders it in front of recorders: the two arms, shadow traffic
    (to the idle arm) and the maintenance queue's service (which answers 202), its queue limited
    to 2 writes a second per client, no burst."""
    arms = {"blue": Recorder("blue"), "green": Recorder("green")}
    service = Recorder("queue", 202)
    [port] = free_ports(1)
    run = str(tmp_path)
    for sub in ("tmp", "logs"):
        os.makedirs(os.path.join(run, sub), exist_ok=True)
    features = {"cache": Cache(False, 64, ()), "shadow": Shadow(100, True), "backpressure": OFF}
    text = nginx_conf.render_local(
        app="shop",
        run_dir=run,
        listen=f"127.0.0.1:{port}",
        nodes={c: [a.address] for c, a in arms.items()},
        js_module=js_module(),
        queue=QUEUE,
        queue_listen=service.address,
        as_root=os.geteuid() == 0,
        **features,
    )
    with open(os.path.join(run, "nginx.conf"), "w") as f:
        f.write(text)
    with open(os.path.join(run, "switch.js"), "w") as f:
        f.write(nginx.SWITCH_JS)
    edge = Edge(run, port, {}, nginx_conf.conf_generation(text), features)
    edge.point("blue")
    subprocess.run(["nginx", "-p", run, "-c", os.path.join(run, "nginx.conf")], check=True)
    yield edge, arms, service
    pid_file = os.path.join(run, "nginx.pid")
    os.kill(int(open(pid_file).read()), signal.SIGQUIT)
    deadline = time.monotonic() + 10
    while os.path.exists(pid_file) and time.monotonic() < deadline:
        time.sleep(0.02)
    for server in (*arms.values(), service):
        server.shutdown()
    if served(run) != run:
        shutil.rmtree(served(run), ignore_errors=True)
        server.server_close()


def settle(recorder: Recorder, n: int) -> None:
    """Mirrored requests arrive after the answer to the client: wait for the `n`th."""
    deadline = time.monotonic() + 5
    while len(recorder.seen) < n and time.monotonic() < deadline:
        time.sleep(0.01)


def test_forged_bluegreen_headers_never_reach_an_arm_nor_the_queue(recorded):
    edge, arms, service = recorded
    state = edge.state("blue")
    # A warm-up under way: its token alone (without the probe token) must not route.
    write_state(edge.run, {**state, "warm": {"color": "green", "token": "w4rm"}})
    forged = {**FORGED, "X-Bluegreen-Warm": "w4rm"}
    status, headers, _ = edge.get("/", headers=forged)
    assert (status, headers["x-bluegreen-color"]) == (200, "blue")
    settle(arms["green"], 1)
    assert arms["blue"].bluegreen_headers() == [{}]
    # Shadow traffic is marked by the edge, and only by it.
    assert arms["green"].bluegreen_headers() == [{"x-bluegreen-shadow": "1"}]

    # bluegreen's own: routed by the warm token, marked a probe, its replay receipt kept.
    own = {**OWN, "X-Bluegreen-Warm": "w4rm", "X-Bluegreen-Replay": "r-1"}
    assert edge.get("/", headers=own)[1]["x-bluegreen-color"] == "green"
    assert arms["green"].bluegreen_headers()[-1] == {
        "x-bluegreen-probe": "1",
        "x-bluegreen-replay": "r-1",
    }

    # The queue service gets the edge's Retry-After and the client's real address, nothing a
    # client said.
    edge.point("blue", maintenance=maintenance(enabled=True, retry_after_s=30, queue=QUEUE))
    post = {**FORGED, "Idempotency-Key": "k-1"}
    status, _, _ = edge.get("/orders", method="POST", headers=post)
    assert status == 202
    assert service.bluegreen_headers() == [
        {"x-bluegreen-retry-after": "30", "x-bluegreen-client": "127.0.0.1"}
    ]


def test_a_flood_of_queued_writes_from_one_client_is_answered_429(recorded):
    edge, _, service = recorded
    edge.point("blue", maintenance=maintenance(enabled=True, retry_after_s=30, queue=QUEUE))
    conn = edge.connection()
    answers = [
        edge.get("/orders", "POST", headers={"Idempotency-Key": f"k-{i}"}, conn=conn)
        for i in range(10)
    ]
    conn.close()
    refused = [h for s, h, _ in answers if s == 429]
    assert len(refused) >= 7, [s for s, _, _ in answers]
    assert {h["retry-after"] for h in refused} == {"1"}
    assert len(service.seen) == 10 - len(refused)
    # Bluegreen's own probe token does not lift it: the queue is for clients' writes only.
    assert edge.get("/orders", "POST", headers={**OWN, "Idempotency-Key": "k-x"})[0] == 429


def test_a_forged_probe_is_limited_cached_and_counted(start):
    edge = start(cache=Cache(True, 64, ()), backpressure=Backpressure(2, 0, 0, 1, "always", 300))
    forged = {probe.PROBE_HEADER: "confirm"}
    assert 429 in [edge.get(headers=forged)[0] for _ in range(10)]

    edge.point("blue", backpressure=OFF)
    first, again = (edge.get("/assets/app.js", headers=forged)[1] for _ in range(2))
    assert (first["x-bluegreen-cache"], again["x-bluegreen-cache"]) == ("MISS", "HIT")

    log = AccessLogSource(
        os.path.join(edge.run, "access.log"), {f"127.0.0.1:{edge.arms['blue']}": "blue"}
    )
    served = edge.served("blue")
    for _ in range(3):
        assert edge.get(headers=forged)[0] == 200
        assert edge.get(headers=OWN)[0] == 200
    deadline = time.monotonic() + 5
    while log.read().get("blue") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    assert log.read()["blue"].requests == 3  # the forged ones: users' traffic to the hold
    assert edge.served("blue") - served == 3  # and to the arm's own figures
    with open(os.path.join(edge.run, "access.log")) as f:
        marks = [json.loads(line)["probe"] for line in f.readlines()[-6:]]
    assert marks == ["", "1"] * 3


def test_bluegreens_own_confirmation_gets_through_while_clients_are_limited(start):
    edge = start(backpressure=Backpressure(1, 0, 0, 1, "always", 300))
    url = f"http://127.0.0.1:{edge.port}/"
    forged = {probe.PROBE_HEADER: TOKEN[:-1] + "0"}  # close is not enough
    assert [edge.get(headers=forged)[0] for _ in range(5)].count(429) >= 3
    answer, waited = probe.wait_until(url, lambda a: a.status == 200, timeout=2, token=TOKEN)
    assert answer.status == 200 and waited < 0.5
    assert edge.get(headers=forged)[0] == 429  # the limit still holds for everyone else


def test_an_arms_journal_is_not_served_through_the_edge(start):
    edge = start()
    assert edge.get_direct("blue", "/_arm/writes")[0] == 200
    assert edge.get("/_arm/writes")[0] == 404
    assert edge.get("/_arm/writes", headers=OWN)[0] == 404
    assert edge.get("/_arm/")[0] == 404
