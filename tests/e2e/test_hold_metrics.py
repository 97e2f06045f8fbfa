"""The hold after a flip against a real Prometheus on loopback, started by the local edge and
scraping the arms' own prometheus_client metrics: a breach rolls back, no traffic is not a pass,
and a metrics source that is down refuses the flip before the pointer moves."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.parse
import urllib.request

import pytest

from cutover.flip import flip
from cutover.operator import Operator
from cutover.results import Outcome
from tests.support.busy import busy_loops
from tests.support.operating import flip_log, operator
from tests.support.watcher import Watcher


def _pid(project, stack: str, name: str) -> int:
    with open(os.path.join(project.dir, ".bluegreen", stack, f"{name}.pid")) as f:
        return int(f.read().split()[0])


def _scraping(url: str, timeout: float = 30) -> None:
    """Wait until Prometheus has scraped both arms twice (it scrapes once a second)."""
    query = urllib.parse.urlencode({"query": "count_over_time(up[30s]) >= 2"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=2) as resp:
            if len(json.load(resp)["data"]["result"]) == 2:
                return
        time.sleep(0.2)
    raise AssertionError(f"Prometheus at {url} did not scrape both arms in {timeout} s")


@pytest.fixture
def watched(project):
    """Blue live, both arms up, the live stack's hold reading the Prometheus the edge runs."""
    project.ws.config_set("live", "bluegreen:metrics", "prometheus")
    project.up_all(active="blue")
    metrics = project.ws.outputs("live")["metrics"]
    assert metrics["source"] == "prometheus"
    assert metrics["url"] == f"http://127.0.0.1:{project.ports['prometheus']}"
    _scraping(metrics["url"])
    return project


def test_a_green_that_starts_failing_during_the_hold_is_rolled_back_through_prometheus(watched):
    project = watched
    op, said = operator(project)
    green = _pid(project, "green", "green")

    def fail_green_once_it_takes_traffic() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (project.ws.outputs("live").get("weights") or {}).get("green") == 100:
                os.kill(green, signal.SIGUSR1)  # every request but the health check: 500
                return
            time.sleep(0.1)

    failer = threading.Thread(target=fail_green_once_it_takes_traffic, daemon=True)
    with Watcher(project.edge_url):
        failer.start()
        ended = flip(op, "green", hold_s=30, interval=1)
        failer.join()
    assert ended.outcome is Outcome.ROLLED_BACK, said
    last = [e for e in flip_log(project) if e["event"] == "flip"][-1]
    assert (last["phase"], last["verdict"]) == ("rolled-back", "breach"), last
    assert last["breach"].startswith("errors: green "), last["breach"]
    assert last["breach"].endswith(": FAIL"), last["breach"]
    assert last["seen"]["green"]["errors"] >= 20, last["seen"]
    assert "bluegreen:activeColor: blue" in project.stack_file("live")
    assert project.colors(20) == ["blue"] * 20


def test_a_green_that_gets_no_traffic_is_inconclusive_and_rolled_back(watched):
    project = watched
    op, said = operator(project)
    # nobody sends a request
    assert flip(op, "green", hold_s=3, interval=1).outcome is Outcome.ROLLED_BACK
    last = [e for e in flip_log(project) if e["event"] == "flip"][-1]
    assert (last["phase"], last["verdict"]) == ("rolled-back", "inconclusive"), last
    assert "no data is not a pass" in last["breach"]
    assert last["seen"]["green"]["requests"] < 20
    assert any(line.startswith("inconclusive during the 100% step") for line in said), said
    assert "bluegreen:activeColor: blue" in project.stack_file("live")
    assert project.ws.outputs("live")["activeColor"] == "blue"


def test_keep_holding_judges_once_traffic_comes(watched):
    project = watched
    said: list[str] = []
    op = Operator(project.ws, out=said.append, keep_holding=True)

    def traffic_after_the_hold_time() -> None:
        # From the hold's own start (said when it begins), not from the update's end: on a
        # loaded machine the two can be seconds apart.
        while not any("holding" in line for line in said):
            time.sleep(0.05)
        time.sleep(4)  # past the 2 s hold: only holding on lets this traffic count
        with Watcher(project.edge_url):  # enough for the judge to show errors under one point
            time.sleep(8)

    sender = threading.Thread(target=traffic_after_the_hold_time, daemon=True)
    sender.start()
    ended = flip(op, "green", hold_s=2, interval=1)
    sender.join()
    assert ended.outcome is Outcome.DONE, said
    assert op.verdict is not None and op.verdict.outcome == "held"
    assert op.verdict.seconds > 4
    assert op.verdict.stats["green"].requests >= 20


def test_a_metrics_source_that_is_down_refuses_the_flip_with_the_pointer_unmoved(watched):
    project = watched
    os.killpg(_pid(project, "live", "prometheus"), signal.SIGTERM)
    time.sleep(0.5)
    op, said = operator(project)
    assert flip(op, "green", hold_s=5).outcome is Outcome.REFUSED
    url = f"http://127.0.0.1:{project.ports['prometheus']}"
    assert said[-1].startswith(
        f"flip to green refused, the pointer stays at blue: Prometheus at {url} did not answer"
    ), said
    assert "bluegreen:activeColor: blue" in project.stack_file("live")
    assert project.ws.outputs("live")["activeColor"] == "blue"
    assert project.colors(10) == ["blue"] * 10
    assert flip_log(project)[-1]["phase"] == "refused"
    # `pulumi up` brings the edge's Prometheus back, as it does a crashed arm.
    project.ws.up("live")
    _scraping(url)


# --- the judge on live traffic: a slightly slower green, and an identical one on a busy machine --


@pytest.fixture
def working(project):
    """watched, with both arms doing 20 ms of work a request (a 20% slowdown is then 4 ms, which
    the arms' histogram buckets, 9% apart, resolve, and which a busy machine's own delays dilute
    little), a gate sampling 8 at a time, and a hold that goes on undecided for at most 60 s."""
    for arm in ("blue", "green"):
        project.ws.config_set(arm, "bluegreen:simulate", "delay-ms=20")
    project.ws.config_set("live", "bluegreen:holdMaxSeconds", "60")
    path = os.path.join(project.dir, "policy", "config.json")
    with open(path) as f:
        policy = json.load(f)
    policy["bluegreen-smoke-test"]["concurrency"] = 8
    with open(path, "w") as f:
        json.dump(policy, f)
    return project


def _judged(said: list[str]) -> list[str]:
    return [line for line in said if line.startswith("hold latency:")]


def test_a_green_slowed_by_a_fifth_during_the_hold_is_rolled_back_through_prometheus(working):
    project = working
    project.ws.config_set("live", "bluegreen:metrics", "prometheus")
    project.up_all(active="blue")
    _scraping(project.ws.outputs("live")["metrics"]["url"])
    op, said = operator(project)
    green = _pid(project, "green", "green")

    def slow_green_once_it_takes_traffic() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if any("holding" in line for line in said):
                time.sleep(2)  # well into the hold: it starts healthy
                os.kill(green, signal.SIGHUP)  # 20 ms of work becomes 24
                return
            time.sleep(0.05)

    slower = threading.Thread(target=slow_green_once_it_takes_traffic, daemon=True)
    with Watcher(project.edge_url):
        time.sleep(5)  # blue's traffic before the flip: the baseline
        slower.start()
        ended = flip(op, "green", hold_s=30, interval=1)
        slower.join()
    assert ended.outcome is Outcome.ROLLED_BACK, said
    last = [e for e in flip_log(project) if e["event"] == "flip"][-1]
    assert (last["phase"], last["verdict"]) == ("rolled-back", "breach"), last
    assert last["breach"].startswith("latency: green is slower than blue by "), last["breach"]
    assert last["breach"].endswith(": FAIL"), last["breach"]
    assert "bluegreen:activeColor: blue" in project.stack_file("live")
    [note] = [r for r in project.ws.outputs("live")["evidence"] if r.get("hold")][-1:]
    latency = note["hold"]["judge"]["findings"][0]
    assert latency["metric"] == "latency" and latency["verdict"] == "fail"
    assert latency["low"] > latency["tolerance"] > 0


def test_an_identical_green_is_held_on_a_busy_machine(working):
    project = working
    project.ws.config_set("live", "bluegreen:metrics", "prometheus")
    project.up_all(active="blue")
    _scraping(project.ws.outputs("live")["metrics"]["url"])
    op, said = operator(project)

    def busy_again_once_holding(spinners) -> None:
        deadline = time.monotonic() + 120
        while not any("holding" in line for line in said) and time.monotonic() < deadline:
            time.sleep(0.05)
        spinners.resume()

    with busy_loops(4) as spinners, Watcher(project.edge_url):
        time.sleep(5)  # blue's traffic before the flip, on the busy machine: the baseline
        # The gate and the update between are not what this test is about (the gate on a busy
        # machine is bench/gate_trials.py's): spinning through them would only slow the suite.
        spinners.pause()
        resumer = threading.Thread(target=busy_again_once_holding, args=(spinners,), daemon=True)
        resumer.start()
        ended = flip(op, "green", hold_s=10, interval=1)
        resumer.join()
    assert ended.outcome is Outcome.DONE, said
    assert any("holding" in line for line in said), said
    assert op.verdict is not None and op.verdict.outcome == "held", op.verdict
    [latency] = _judged(said)[-1:]
    assert latency.endswith(": pass") and "at the median (95% CI" in latency, latency
    assert "bluegreen:activeColor: green" in project.stack_file("live")
