"""Write intents kept during maintenance, through `pulumi up -s live`: the real queue service
behind the real nginx, killed and brought back in the middle of the window, then every accepted
intent replayed to the active arm exactly once, in order; the window announced to the webhook."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from bluegreen import probe
from tests.support.receiver import Receiver

WRITES = 1000


@pytest.fixture
def webhook():
    r = Receiver()
    yield r
    r.stop()


def post(project, path: str, key: str | None, body: dict) -> probe.Answer:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    return probe.request(
        project.edge_url.rstrip("/") + path,
        method="POST",
        headers=headers,
        body=json.dumps(body).encode(),
        timeout=5,
    )


def journal(project, color: str) -> list[dict]:
    answer = probe.request(project.arm_url(color) + "/_arm/writes", timeout=5)
    return json.loads(answer.body)


def queue_pid(project) -> int:
    with open(os.path.join(project.dir, ".bluegreen", "live", "queue.pid")) as f:
        return int(f.read().split()[0])


def test_intents_survive_the_queue_service_and_reach_the_arm_once_each_in_order(
    bare_project, webhook
):
    project = bare_project
    end = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for key, value in {
        "maintenanceQueue": "/orders",
        "maintenanceSoakSeconds": "1",
        "maintenanceEnd": end,
        "maintenanceBanner": "Moving the database",
        # This test is about keeping writes, not limiting them: one client sends them all.
        "maintenanceQueueRate": "10000",
        "maintenanceQueueBurst": "10000",
    }.items():
        project.ws.config_set("live", f"bluegreen:{key}", value)
    project.ws.config_set_secret("live", "bluegreen:webhookUrl", webhook.url)
    project.up_all(active="blue")
    project.ws.config_set("live", "bluegreen:maintenance", "true")
    project.ws.up("live")
    told = [(b["bluegreen"]["event"], b["bluegreen"]["end"]) for b in webhook.bodies]
    assert told == [("maintenance-planned", end), ("maintenance-started", end)]

    # A write without a key is refused as before; one to a path not queued too.
    refused = post(project, "/orders/x", None, {})
    assert refused.status == 503 and 0 < int(refused.headers["retry-after"]) <= 600
    assert post(project, "/cart/1", "cart-1", {}).status == 503

    receipts: dict[int, str] = {}
    retried = []
    killed = threading.Event()

    def client() -> None:
        # A client as the 503's Retry-After asks: the same key again until it is accepted.
        for i in range(WRITES):
            while True:
                answer = post(project, f"/orders/{i}", f"order-{i}", {"order": i})
                if answer.status == 202:
                    receipts[i] = json.loads(answer.body)["receipt"]
                    break
                assert answer.status in (502, 503), (i, answer.status, answer.body)
                retried.append(i)
                time.sleep(0.05)
            if i == WRITES // 2:
                killed.set()

    writer = threading.Thread(target=client)
    writer.start()
    assert killed.wait(120)
    os.kill(queue_pid(project), signal.SIGKILL)  # the queue service dies mid-window
    project.ws.up("live")  # and `pulumi up` brings it back, on the same store
    writer.join(300)
    assert not writer.is_alive() and len(receipts) == WRITES
    assert retried, "the client never met the dead queue service"

    again = post(project, "/orders/7", "order-7", {"order": 7})
    assert (again.status, json.loads(again.body)["receipt"]) == (202, receipts[7])
    assert journal(project, "blue") == [], "nothing reaches an arm during maintenance"

    project.ws.config_set("live", "bluegreen:maintenance", "false")
    project.ws.up("live")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(journal(project, "blue")) < WRITES:
        time.sleep(0.5)
    time.sleep(2)  # anything sent twice would show now
    got = journal(project, "blue")
    assert [w["key"] for w in got] == [f"order-{i}" for i in range(WRITES)]
    assert not any(w["duplicate"] for w in got)
    assert {w["replay"] for w in got} == set(receipts.values())
    assert [b["bluegreen"]["event"] for b in webhook.bodies][-1] == "maintenance-ended"

    with project.bluegreen("status") as proc:
        out = proc.communicate(timeout=60)[0]
    assert f"0 pending, {WRITES} delivered, 0 dead" in out, out
