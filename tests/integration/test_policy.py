"""Every policy, pass and violation, called directly with argument objects built here.

The smoke test talks HTTP to real reference services on loopback; nothing of the policy SDK is
mocked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from bluegreen_policy import rules, smoke

from bluegreen import probe
from cutover.workspace import ROOT
from tests.support.policy_cases import (
    EDGE,
    SAMPLE,
    edge,
    run,
)
from tests.support.sandbox import free_ports

APP = os.path.join(ROOT, "app", "server.py")


class Service:
    """A reference service in its own process, as an arm runs it (in-process threads would share
    the test's GIL and distort the latencies the smoke test compares)."""

    def __init__(self, color: str, version: str, **faults) -> None:
        [port] = free_ports(1)
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in faults.items()]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                APP,
                f"--color={color}",
                f"--version={version}",
                f"--port={port}",
                *flags,
            ],
            stdout=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"
        probe.wait_until(self.url + "/healthz/ready", lambda a: a.status is not None, timeout=10)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def services() -> Iterator:
    started: list[Service] = []

    def start(color: str, version: str, **faults) -> Service:
        started.append(Service(color, version, **faults))
        return started[-1]

    yield start
    for s in started:
        s.close()


QUICK = {"samples": 200, "maxSamples": 800, "concurrency": 4}
"""For arms slowed on purpose: fewer requests, more at once."""


def report_of(monkeypatch, tmp_path) -> callable:
    """The gate's figures (its report file), as the `bluegreen` command reads them."""
    path = tmp_path / "smoke.json"
    monkeypatch.setenv(smoke.REPORT_ENV, str(path))
    return lambda: json.loads(path.read_text())


def test_healthy_green_passes_the_smoke_test(services):
    blue, green = services("blue", "v1"), services("green", "v2")
    assert run(rules.smoke_test, EDGE, edge(blue.url, green.url), SAMPLE) == []


def test_unready_green_is_refused(services):
    blue, green = services("blue", "v1"), services("green", "v2", ready_status=500)
    [message] = run(rules.smoke_test, EDGE, edge(blue.url, green.url), SAMPLE)
    assert message.startswith("Flip to green denied: green is not ready")
    assert f"{green.url}/healthz/ready answered HTTP 500" in message


def test_green_on_the_wrong_version_is_refused(services):
    blue, green = services("blue", "v1"), services("green", "v9")
    [message] = run(rules.smoke_test, EDGE, edge(blue.url, green.url), SAMPLE)
    assert "green serves version v9" in message and "its stack pins v2" in message


def test_slow_green_is_refused_with_the_shift_its_interval_and_the_tolerance(services):
    blue, green = services("blue", "v1", delay_ms=2), services("green", "v2", delay_ms=6)
    [message] = run(rules.smoke_test, EDGE, edge(blue.url, green.url), QUICK)
    assert message.startswith(
        "Flip to green denied: green is worse than blue: latency: green is slower than blue by "
    ), message
    assert " ms at the median (95% CI " in message and "over 200 requests each: FAIL" in message
    assert message.endswith("Fix green or keep blue live."), message


def test_erroring_green_is_refused(services, monkeypatch, tmp_path):
    report = report_of(monkeypatch, tmp_path)
    blue, green = services("blue", "v1"), services("green", "v2", error_rate=0.3)
    [message] = run(rules.smoke_test, EDGE, edge(blue.url, green.url), SAMPLE)
    assert "green is worse than blue: errors: green " in message, message
    assert "first failure: http://127.0.0.1:" in message and "answered HTTP 500" in message
    figures = report()["judge"]
    assert figures["outcome"] == "fail" and figures["findings"][1]["verdict"] == "fail"


def test_a_comparison_still_undecided_at_the_cap_is_refused_as_inconclusive(services):
    # 50 requests each cannot show an error rate within half a point at 95%: not a pass.
    blue, green = services("blue", "v1"), services("green", "v2")
    config = {"samples": 50, "maxSamples": 50}
    [message] = run(rules.smoke_test, EDGE, edge(blue.url, green.url), config)
    assert message.startswith(
        "Flip to green denied: the comparison with blue is still undecided after 50 requests "
        "each (bluegreen-smoke-test maxSamples): "
    ), message
    # Errors are undecided whatever the machine; latency over 50 requests may be too, on a busy
    # one, and is then named first.
    undecided = message.split(". Not decided is not a pass.")[0]
    assert re.search(
        r"errors: green 0\.00% against blue 0\.00%, a difference of \+0\.00 points "
        r"\(95% CI -\d+\.\d\d to \+\d+\.\d\d; tolerance 0\.50\) over 50 requests each: "
        r"not yet decided$",
        undecided,
    ), message


def test_a_dry_run_metric_is_measured_and_recorded_but_refuses_nothing(
    services, monkeypatch, tmp_path
):
    report = report_of(monkeypatch, tmp_path)
    blue, green = services("blue", "v1"), services("green", "v2", error_rate=0.3)
    config = {**SAMPLE, "metrics": {"errors": {"dryRun": True}}}
    assert run(rules.smoke_test, EDGE, edge(blue.url, green.url), config) == []
    judged = report()["judge"]
    assert judged["outcome"] == "pass"
    [errors] = [f for f in judged["findings"] if f["metric"] == "errors"]
    assert (errors["verdict"], errors["dryRun"]) == ("fail", True)
    assert errors["targetValue"] > 0.2


def test_an_unweighted_metric_fails_through_the_score_not_alone(services):
    blue, green = services("blue", "v1"), services("green", "v2", error_rate=0.3)
    lenient = {
        **SAMPLE,
        "metrics": {"errors": {"critical": False}},
        "groups": {"latency": 60, "errors": 40},
        "passScore": 60,
        "marginalScore": 50,
    }
    assert run(rules.smoke_test, EDGE, edge(blue.url, green.url), lenient) == []
    strict = {**lenient, "passScore": 95, "marginalScore": 75}
    [message] = run(rules.smoke_test, EDGE, edge(blue.url, green.url), strict)
    assert "green is worse than blue: score 60 below 75: errors: green" in message, message


def test_unreachable_green_is_a_violation_naming_the_address(services):
    blue = services("blue", "v1")
    [message] = run(rules.smoke_test, EDGE, edge(blue.url, "http://127.0.0.1:9"), SAMPLE)
    assert "http://127.0.0.1:9/healthz/ready did not answer (connection refused)" in message


def test_gold_requests_are_checked(services):
    blue, green = services("blue", "v1"), services("green", "v2")
    config = {**SAMPLE, "goldRequests": [{"path": "/", "bodyContains": "hello from blue"}]}
    [message] = run(rules.smoke_test, EDGE, edge(blue.url, green.url), config)
    assert "gold request GET / expected HTTP 200 with 'hello from blue'" in message


def test_moving_traffic_away_from_a_broken_arm_is_allowed(services):
    # A rollback escapes an arm that crashed: it must not be held hostage by that arm's health.
    blue = services("blue", "v1")
    props = edge(blue.url, "http://127.0.0.1:9", active="blue", previous="green")
    assert run(rules.rollback_target, EDGE, props) == []
