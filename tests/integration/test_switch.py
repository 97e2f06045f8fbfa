"""The switch as nginx serves it: a real nginx with the njs module, the config `render_local`
renders and the state `switch_state` builds, in front of two real arms (app/server.py) on
loopback. No Pulumi here: each test writes the state as the edge resource does and looks at what
clients see. tests/e2e/test_flip.py drives the same through `pulumi up`."""

from __future__ import annotations

import json
import os
import time

import pytest

from agents.arm.lease import LeaseReader
from bluegreen import nginx
from bluegreen.config import Backpressure, Cache, Shadow, weights_for
from platforms.local.edge_files import served, write_state
from platforms.local.nginx_binary import FlipError
from platforms.local.nginx_edge import EdgeProvider
from tests.support.edge import (
    OWN,
    VERSIONS,
    colors,
    start_slow_request,
)
from tests.support.mocks import maintenance
from tests.support.sandbox import free_ports


def test_a_flip_keeps_the_kept_alive_connection_and_the_workers(start):
    edge = start()
    conn = edge.connection()
    workers = edge.workers()
    assert edge.get(conn=conn)[1]["x-bluegreen-color"] == "blue"
    state = edge.point("green")
    status, headers, _ = edge.get(conn=conn)  # the same connection, the very next request
    assert (status, headers["x-bluegreen-color"]) == (200, "green")
    assert headers["x-bluegreen-edge"] == "green"
    assert headers["x-bluegreen-edge-generation"] == state["generation"]
    edge.point("blue")
    assert edge.get(conn=conn)[1]["x-bluegreen-color"] == "blue"
    assert edge.workers() == workers, "nginx was reloaded"
    conn.close()


def test_a_canary_step_is_a_weighted_choice_per_request(start):
    edge = start()
    edge.point("green", canary=25)
    seen = colors(edge, 400)
    assert 50 <= seen["green"] <= 150, seen  # 100 expected
    assert seen["green"] + seen["blue"] == 400


def test_a_sticky_canary_keeps_each_client_and_only_ever_moves_clients_forward(start):
    edge = start()
    clients = [f"client-{i}" for i in range(200)]

    def placement() -> dict[str, str]:
        return {
            c: edge.get(headers={"Cookie": f"bluegreen_client={c}"})[1]["x-bluegreen-color"]
            for c in clients
        }

    edge.point("green", canary=10, sticky=True)
    first, again = placement(), placement()
    assert first == again
    edge.point("green", canary=50, sticky=True)
    later = placement()
    assert all(later[c] == "green" for c in clients if first[c] == "green")
    assert 5 <= sum(v == "green" for v in first.values()) <= 40
    assert 70 <= sum(v == "green" for v in later.values()) <= 130
    # A new client gets its id in a cookie; a client that has one is not given another.
    _, headers, _ = edge.get()
    assert headers["set-cookie"].startswith("bluegreen_client=")
    assert "set-cookie" not in edge.get(headers={"Cookie": "bluegreen_client=x"})[1]


def test_no_cookie_is_set_without_a_sticky_split(start):
    edge = start()
    edge.point("green", canary=10)
    assert "set-cookie" not in edge.get()[1]


def test_maintenance_refuses_writes_with_retry_after_and_no_reload(start):
    edge = start()
    workers = edge.workers()
    conn = edge.connection()
    edge.point(
        "blue", maintenance=maintenance(enabled=True, status=423, retry_after_s=9, banner="RO")
    )
    status, headers, body = edge.get(method="POST", conn=conn)
    assert (status, headers["retry-after"], headers["x-bluegreen-banner"]) == (423, "9", "RO")
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error": "maintenance",
        "status": 423,
        "retryAfter": 9,
        "message": "The service is read-only for maintenance; retry later.",
    }
    status, headers, _ = edge.get(conn=conn)
    assert (status, headers["x-bluegreen-color"], headers["x-bluegreen-banner"]) == (
        200,
        "blue",
        "RO",
    )
    assert "retry-after" not in headers
    edge.point("blue")
    assert edge.get(method="POST", conn=conn)[0] == 200
    assert edge.workers() == workers
    conn.close()


def test_the_rate_limit_answers_429_with_retry_after_and_lets_probes_through(start):
    edge = start(backpressure=Backpressure(2, 0, 0, 4, "always", 300))
    edge.point("blue")
    statuses = [edge.get() for _ in range(10)]
    refused = [h for s, h, _ in statuses if s == 429]
    assert len(refused) >= 7, [s for s, _, _ in statuses]
    assert all(h["retry-after"] == "4" for h in refused)
    assert "retry-after" not in statuses[0][1]
    probes = [edge.get(headers=OWN)[0] for _ in range(5)]
    assert probes == [200] * 5


def test_hold_limits_end_when_the_hold_ends(start):
    edge = start(backpressure=Backpressure(1, 0, 0, 1, "hold", 300))
    edge.point("blue", limits_until=time.time() - 1)
    assert [edge.get()[0] for _ in range(6)] == [200] * 6
    edge.point("blue", limits_until=time.time() + 60)
    assert 429 in [edge.get()[0] for _ in range(6)]


def test_the_connection_cap_answers_503_with_retry_after(start):
    edge = start(backpressure=Backpressure(0, 0, 1, 3, "always", 300))
    edge.point("blue")
    first = edge.connection()
    first.request("GET", "/")  # holds the one connection the cap allows while it is served
    held = first.getresponse()
    held.read()
    # A kept-alive connection between requests is not counted: refusal needs one in flight.
    slow = start_slow_request(edge)
    status, headers, _ = edge.get()
    slow.close()
    first.close()
    assert (status, headers.get("retry-after")) == (503, "3")


def test_shadow_mirrors_reads_to_the_idle_arm_and_leaves_writes_alone(start):
    edge = start(shadow=Shadow(100, False))
    edge.point("blue")
    before = edge.served("green")
    for _ in range(20):
        assert edge.get()[1]["x-bluegreen-color"] == "blue"
    for _ in range(5):
        assert edge.get(method="POST")[1]["x-bluegreen-color"] == "blue"
    deadline = time.monotonic() + 5
    while edge.served("green") - before < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert edge.served("green") - before == 20  # the reads, not the writes
    # The mirrored requests are in the access log as the idle arm's, for `bluegreen shadow`.
    with open(os.path.join(edge.run, "access.log")) as f:
        lines = [json.loads(line) for line in f]
    assert sum(1 for e in lines if e["color"] == "green") == 20


def test_shadow_share_and_writes_follow_the_state(start):
    edge = start(shadow=Shadow(50, True))
    edge.point("blue")
    before = edge.served("green")
    for _ in range(200):
        edge.get(method="POST")
    time.sleep(0.5)
    mirrored = edge.served("green") - before
    assert 60 <= mirrored <= 140, mirrored
    edge.point("blue", shadow=Shadow(0, False))  # off without a reload: the mirror ends at once
    before = edge.served("green")
    for _ in range(20):
        edge.get()
    time.sleep(0.3)
    assert edge.served("green") == before


def test_the_cache_never_serves_the_other_version(start):
    edge = start(cache=Cache(True, 64, ()))
    edge.point("blue")
    first, second = edge.get("/assets/app.js"), edge.get("/assets/app.js")
    assert first[1]["x-bluegreen-cache"] == "MISS" and second[1]["x-bluegreen-cache"] == "HIT"
    assert second[1]["x-bluegreen-version"] == "v1"
    edge.point("green")
    flipped = [edge.get("/assets/app.js")[1] for _ in range(3)]
    assert [h["x-bluegreen-version"] for h in flipped] == ["v2"] * 3
    assert [h["x-bluegreen-cache"] for h in flipped] == ["MISS", "HIT", "HIT"]
    edge.point("blue")  # the rollback: blue's own entries, never green's
    back = edge.get("/assets/app.js")[1]
    assert (back["x-bluegreen-version"], back["x-bluegreen-cache"]) == ("v1", "HIT")
    # Uncacheable answers and probes are not kept.
    assert "x-bluegreen-cache" in edge.get("/")[1]
    assert edge.get("/")[1]["x-bluegreen-cache"] == "MISS"
    probe_answer = edge.get("/assets/app.js", headers=OWN)[1]
    assert probe_answer["x-bluegreen-cache"] == "BYPASS"


def test_a_warm_token_fills_the_new_colours_cache_before_users_arrive(start):
    edge = start(cache=Cache(True, 64, ("/assets/app.js",)))
    state = edge.state("blue")
    write_state(edge.run, {**state, "warm": {"color": "green", "token": "t0k3n"}})
    warm = {"X-Bluegreen-Warm": "t0k3n", **OWN}
    assert edge.get("/assets/app.js", headers=warm)[1]["x-bluegreen-color"] == "green"
    assert edge.get("/assets/app.js")[1]["x-bluegreen-color"] == "blue"  # users stay on blue
    wrong = {"X-Bluegreen-Warm": "guess"}
    assert edge.get("/assets/app.js", headers=wrong)[1]["x-bluegreen-color"] == "blue"
    edge.point("green")
    first = edge.get("/assets/app.js")[1]
    assert (first["x-bluegreen-version"], first["x-bluegreen-cache"]) == ("v2", "HIT")


def test_an_unreadable_state_is_a_503_and_an_error_in_the_log(start):
    edge = start()
    os.remove(os.path.join(served(edge.run), "switch.json"))
    assert edge.get()[0] == 503
    with open(os.path.join(edge.run, "error.log")) as f:
        assert "cannot read the switch state" in f.read()


def test_the_handover_runs_from_when_the_edge_serves_the_fence_whatever_since_says(start):
    """The state's `since` is the operator's clock before the copy, the rebuild or the cache
    warm-up, and maybe skewed: the edge serves when it began serving the fence, by its own
    clock, so the new holder's writers wait the whole handover, and a later change that keeps
    the fence keeps them running."""
    edge = start()
    reader = LeaseReader(f"http://127.0.0.1:{edge.port}")
    for fence, active, skew in ((2, "green", -86400.0), (3, "blue", 86400.0)):
        before = time.time()
        edge.point(active, lease=nginx.Lease(fence=fence, since=before + skew, handover=1))
        served = reader.read()
        assert (served.holder, served.fence) == (active, fence)
        # A file's mtime is the kernel's coarse clock, up to a tick behind time.time().
        assert before - 0.05 <= served.since <= served.now, (before, served)
        assert not served.lets(active), "writers may start before the handover ran"
    deadline = time.monotonic() + 5
    while not served.lets("blue") and time.monotonic() < deadline:
        time.sleep(0.05)
        served = reader.read()
    assert served.lets("blue") and served.now - served.since < 2, served
    edge.point("blue", sticky=True, lease=nginx.Lease(fence=3, since=0.0, handover=1))
    again = reader.read()
    assert again.since == served.since and again.lets("blue"), (again, served)


def test_a_failed_confirmation_puts_the_old_holder_back_with_a_higher_fence(start, tmp_path):
    """A switch whose confirmation fails restores the previous state; its lease must not bring
    back the smaller fence, which writers of the failed state's holder may already hold."""
    edge = start()  # the two arms
    dead, port = free_ports(2)
    arms = {c: f"127.0.0.1:{p}" for c, p in edge.arms.items()}
    features = {k: edge.features[k] for k in ("cache", "shadow", "backpressure")}

    def props(active: str, green_node: str) -> dict:
        return {
            "app": "shop",
            "runDir": str(tmp_path / "edge"),
            "listen": f"127.0.0.1:{port}",
            "activeColor": active,
            "weights": weights_for(active),
            "nodes": {"blue": [arms["blue"]], "green": [green_node]},
            "arms": {
                c: {"endpoint": f"http://{a}", "version": VERSIONS[c]} for c, a in arms.items()
            },
            "healthPath": "/healthz/ready",
            "confirmTimeout": 0.5,
            "sticky": False,
            "handover": 5,
            "queueListen": "",
            **nginx.Features(maintenance(enabled=False), **features).props(),
        }

    provider = EdgeProvider()
    blue = props("blue", arms["green"])
    reader = LeaseReader(f"http://127.0.0.1:{port}")
    try:
        created = provider.create(blue).outs
        assert reader.read().fence == 1
        # Green's node answers nothing: its requests go to blue's, the backup, and the switch
        # is not confirmed.
        with pytest.raises(FlipError, match="not confirmed"):
            provider.update("edge", created, props("green", f"127.0.0.1:{dead}"))
        served = reader.read()
        assert served.holder == "blue" and served.fence > 2, served
        moved = provider.update("edge", created, props("green", arms["green"])).outs
        assert moved["lease"]["fence"] == reader.read().fence > served.fence
    finally:
        provider.delete("edge", blue)


def test_the_workers_of_an_edge_started_as_root_are_not_root(start):
    """They parse every client's request: as root, a flaw in nginx or njs would be root's. As
    their own user they still read the state and the lease, and buffer a large body."""
    edge = start()
    if os.geteuid() != 0:
        pytest.skip("nginx keeps its own user when not started as root")
    for pid in edge.workers():
        with open(f"/proc/{pid}/status") as f:
            uids = next(line.split()[1:] for line in f if line.startswith("Uid:"))
        assert "0" not in uids, f"worker {pid} runs with uids {uids}"
    assert edge.get()[1]["x-bluegreen-color"] == "blue"
    assert LeaseReader(f"http://127.0.0.1:{edge.port}").read().holder == "blue"
    # Past the body buffer, nginx writes the body to its temp dir first.
    conn = edge.connection()
    conn.request("POST", "/", body=b"x" * (256 << 10))
    answer = conn.getresponse()
    conn.close()
    assert answer.status < 500 and answer.getheader("x-bluegreen-color") == "blue", answer.status
