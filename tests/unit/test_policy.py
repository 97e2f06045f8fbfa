"""Every policy, pass and violation, called directly with argument objects built here.

The smoke test talks HTTP to real reference services on loopback; nothing of the policy SDK is
mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from bluegreen_policy import rules, settings, smoke, state
from pulumi_policy import PolicyResourceOptions, ResourceValidationArgs
from pulumi_policy.proxy import unknown_checking_proxy

from bluegreen import probe
from cutover.workspace import ROOT
from tests.support.sandbox import free_ports

APP = os.path.join(ROOT, "app", "server.py")

EDGE, ARM = rules.EDGE, rules.ARM


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


def as_engine_sends(value):
    """Numbers arrive as floats, containers as the SDK's read-only proxies."""
    if isinstance(value, dict):
        return {k: as_engine_sends(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_engine_sends(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


LIVE_STACK, OWN_STACK = "organization/bluegreen/live", "organization/bluegreen/blue"


def run(
    policy,
    resource_type: str,
    props: dict,
    config: dict | None = None,
    parent: str | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> list[str]:
    """Call `policy` as the engine would. What the stacks serve now (which the policies read from
    the state themselves) is given here in the props' old names, and served by a stand-in for
    `state.outputs`: previousColor/previousWeights for the edge's own stack, liveColor for
    the live stack and servingVersion for the arm's own."""
    props = dict(props)
    world: dict[str, dict] = {}
    if resource_type == EDGE:
        props["stack"] = LIVE_STACK
        world[LIVE_STACK] = {
            "activeColor": props.pop("previousColor", None),
            "weights": props.pop("previousWeights", None),
        }
    elif resource_type == ARM:
        props.update(stack=OWN_STACK, liveStack=LIVE_STACK)
        world[LIVE_STACK] = {"activeColor": props.pop("liveColor", None)}
        world[OWN_STACK] = {"version": props.pop("servingVersion", None)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(state, "outputs", lambda stack: world.get(stack))
        reports: list[str] = []
        opts = PolicyResourceOptions(False, [], None, [], None, [], parent=parent)
        args = ResourceValidationArgs(
            resource_type,
            unknown_checking_proxy(as_engine_sends(props)),
            f"urn:pulumi:live::bluegreen::{resource_type}::x",
            "live",
            opts,
            None,
            as_engine_sends(config or {}),
        )
        policy(args, lambda message, urn=None: reports.append(message))
    return reports


def edge(blue: str, green: str, active="green", previous="blue", **extra) -> dict:
    weights = {"blue": 100, "green": 0} if active == "blue" else {"blue": 0, "green": 100}
    prev = (
        None
        if previous is None
        else ({"blue": 100, "green": 0} if previous == "blue" else {"blue": 0, "green": 100})
    )
    return {
        "activeColor": active,
        "previousColor": previous,
        "weights": weights,
        "previousWeights": prev,
        "arms": {
            "blue": {"endpoint": blue, "version": "v1"},
            "green": {"endpoint": green, "version": "v2"},
        },
        "healthPath": "/healthz/ready",
        "dnsTtl": None,
        "maintenance": False,
        "freezeOverride": None,
        **extra,
    }


SAMPLE = {"concurrency": 2}  # the shipped sample sizes: 800 requests each, up to 6400
QUICK = {"samples": 200, "maxSamples": 800, "concurrency": 4}
"""For arms slowed on purpose: fewer requests, more at once."""


def report_of(monkeypatch, tmp_path) -> callable:
    """The gate's figures (its report file), as the `bluegreen` command reads them."""
    path = tmp_path / "smoke.json"
    monkeypatch.setenv(smoke.REPORT_ENV, str(path))
    return lambda: json.loads(path.read_text())


# --- smoke test ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_healthy_green_passes_the_smoke_test(services):
    blue, green = services("blue", "v1"), services("green", "v2")
    assert run(rules.smoke_test, EDGE, edge(blue.url, green.url), SAMPLE) == []


@pytest.mark.integration
def test_unready_green_is_refused(services):
    blue, green = services("blue", "v1"), services("green", "v2", ready_status=500)
    [message] = run(rules.smoke_test, EDGE, edge(blue.url, green.url), SAMPLE)
    assert message.startswith("Flip to green denied: green is not ready")
    assert f"{green.url}/healthz/ready answered HTTP 500" in message


@pytest.mark.integration
def test_green_on_the_wrong_version_is_refused(services):
    blue, green = services("blue", "v1"), services("green", "v9")
    [message] = run(rules.smoke_test, EDGE, edge(blue.url, green.url), SAMPLE)
    assert "green serves version v9" in message and "its stack pins v2" in message


@pytest.mark.integration
def test_slow_green_is_refused_with_the_shift_its_interval_and_the_tolerance(services):
    blue, green = services("blue", "v1", delay_ms=2), services("green", "v2", delay_ms=6)
    [message] = run(rules.smoke_test, EDGE, edge(blue.url, green.url), QUICK)
    assert message.startswith(
        "Flip to green denied: green is worse than blue: latency: green is slower than blue by "
    ), message
    assert " ms at the median (95% CI " in message and "over 200 requests each: FAIL" in message
    assert message.endswith("Fix green or keep blue live."), message


@pytest.mark.integration
def test_erroring_green_is_refused(services, monkeypatch, tmp_path):
    report = report_of(monkeypatch, tmp_path)
    blue, green = services("blue", "v1"), services("green", "v2", error_rate=0.3)
    [message] = run(rules.smoke_test, EDGE, edge(blue.url, green.url), SAMPLE)
    assert "green is worse than blue: errors: green " in message, message
    assert "first failure: http://127.0.0.1:" in message and "answered HTTP 500" in message
    figures = report()["judge"]
    assert figures["outcome"] == "fail" and figures["findings"][1]["verdict"] == "fail"


@pytest.mark.integration
def test_a_comparison_still_undecided_at_the_cap_is_refused_as_inconclusive(services):
    # 50 requests each cannot show an error rate within half a point at 95%: not a pass.
    blue, green = services("blue", "v1"), services("green", "v2")
    config = {"samples": 50, "maxSamples": 50}
    [message] = run(rules.smoke_test, EDGE, edge(blue.url, green.url), config)
    assert message.startswith(
        "Flip to green denied: the comparison with blue is still undecided after 50 requests "
        "each (bluegreen-smoke-test maxSamples): errors: green 0.00% against blue 0.00%"
    ), message
    assert "Not decided is not a pass." in message


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
def test_unreachable_green_is_a_violation_naming_the_address(services):
    blue = services("blue", "v1")
    [message] = run(rules.smoke_test, EDGE, edge(blue.url, "http://127.0.0.1:9"), SAMPLE)
    assert "http://127.0.0.1:9/healthz/ready did not answer (connection refused)" in message


@pytest.mark.integration
def test_gold_requests_are_checked(services):
    blue, green = services("blue", "v1"), services("green", "v2")
    config = {**SAMPLE, "goldRequests": [{"path": "/", "bodyContains": "hello from blue"}]}
    [message] = run(rules.smoke_test, EDGE, edge(blue.url, green.url), config)
    assert "gold request GET / expected HTTP 200 with 'hello from blue'" in message


def test_no_traffic_moving_means_no_smoke_test():
    # Both endpoints are unreachable: any request the policy made would be a violation.
    props = edge("http://127.0.0.1:9", "http://127.0.0.1:9", active="blue", previous="blue")
    assert run(rules.smoke_test, EDGE, props, SAMPLE) == []


# --- weights ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "canary", "expected"),
    [
        ({"blue": 0, "green": 100}, None, None),
        ({"blue": 10, "green": 100}, None, "sum to 110, not 100"),
        ({"blue": 50, "green": 50}, None, "green is active but has weight 50"),
        ({"blue": 95, "green": 5}, 5, None),
        ({"blue": 90, "green": 10}, 10, "canary weight 10 for green"),
        ({"blue": -5, "green": 105}, None, "must be integers from 0 to 100"),
    ],
)
def test_weights(weights, canary, expected):
    props = {**edge("", ""), "weights": weights, "canaryWeight": canary}
    messages = run(rules.weights_valid, EDGE, props)
    assert (messages == []) if expected is None else (expected in messages[0])


# --- DNS TTL ------------------------------------------------------------------------------------


def test_dns_ttl_over_the_limit_is_refused_once_naming_the_key():
    [message] = run(rules.dns_ttl, EDGE, {**edge("", ""), "dnsTtl": 300})
    assert message.startswith("bluegreen:dnsTtl 300 on stack live denied")
    assert "bluegreen-dns-ttl maxTtlSeconds" in message
    assert message.endswith("Set bluegreen:dnsTtl to 30 or less.")
    assert run(rules.dns_ttl, EDGE, {**edge("", ""), "dnsTtl": 30}) == []
    assert run(rules.dns_ttl, EDGE, {**edge("", ""), "dnsTtl": None}) == []


def test_records_the_edge_declares_are_judged_by_the_edge_alone():
    record = {"name": "shop.example.", "ttl": 300}
    under_edge = "urn:pulumi:live::bluegreen::bluegreen:index:Edge::live"
    assert run(rules.dns_ttl, "aws:route53/record:Record", record, parent=under_edge) == []
    # A record declared by anything else is still judged on its own.
    [message] = run(rules.dns_ttl, "aws:route53/record:Record", record)
    assert message.startswith("DNS record shop.example. 300 on live denied")
    assert run(rules.dns_ttl, "aws:route53/record:Record", record, {"maxTtlSeconds": 300}) == []


def test_a_state_that_cannot_be_read_refuses_rather_than_guesses(monkeypatch):
    def unreadable(stack):
        raise state.StateReadError(f"reading stack {stack} failed: backend unreachable")

    props = edge("http://127.0.0.1:9", "http://127.0.0.1:9")
    props["stack"] = LIVE_STACK
    args = ResourceValidationArgs(
        EDGE,
        unknown_checking_proxy(as_engine_sends(props)),
        "urn:pulumi:live::bluegreen::bluegreen:index:Edge::live",
        "live",
        PolicyResourceOptions(False, [], None, [], None, []),
        None,
        {},
    )
    monkeypatch.setattr(state, "outputs", unreadable)
    reports: list[str] = []
    rules.smoke_test(args, lambda message, urn=None: reports.append(message))
    [message] = reports
    assert "the gate cannot read what is live now" in message
    assert "backend unreachable" in message


# --- rollback target ----------------------------------------------------------------------------


@pytest.mark.integration
def test_moving_traffic_away_from_a_broken_arm_is_allowed(services):
    # A rollback escapes an arm that crashed: it must not be held hostage by that arm's health.
    blue = services("blue", "v1")
    props = edge(blue.url, "http://127.0.0.1:9", active="blue", previous="green")
    assert run(rules.rollback_target, EDGE, props) == []


def test_both_arms_must_exist():
    props = edge("", "http://127.0.0.1:9")
    assert "arm blue has no endpoint" in run(rules.rollback_target, EDGE, props)[0]


def test_live_arm_cannot_be_scaled_to_zero():
    props = {
        "color": "blue",
        "version": "v1",
        "liveColor": "blue",
        "servingVersion": "v1",
        "replicas": 0,
    }
    assert "scales it to 0" in run(rules.rollback_target, ARM, props)[0]
    assert run(rules.rollback_target, ARM, {**props, "liveColor": "green"}) == []


# --- no deploys to the live arm -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("live", "serving", "denied"),
    [
        ("blue", "v1", True),
        ("green", "v1", False),
        (None, None, False),
        ("blue", None, False),
        ("blue", "v3", False),
    ],
)
def test_deploys_go_to_the_idle_arm(live, serving, denied):
    props = {
        "color": "blue",
        "version": "v3",
        "liveColor": live,
        "servingVersion": serving,
        "replicas": 1,
    }
    messages = run(rules.no_deploy_to_live_arm, ARM, props)
    if denied:
        assert messages == [
            "Deploy to blue denied: blue is the live arm (bluegreen:activeColor on the live stack) "
            "and serves v1; this update would change it to v3 under live traffic. "
            "Deploy v3 to the idle "
            "arm green (pulumi up -s green) and flip."
        ]
    else:
        assert messages == []


# --- change freeze ------------------------------------------------------------------------------

WINDOW = {
    "windows": [
        {"name": "year-end", "start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z"}
    ]
}


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setattr(rules, "now", lambda: datetime(2026, 12, 24, 12, 0, tzinfo=UTC))


def test_flip_inside_a_freeze_is_refused(frozen):
    [message] = run(rules.change_freeze, EDGE, edge("", ""), WINDOW)
    assert message.startswith(
        'Moving traffic to green denied: change freeze "year-end" (2026-12-20 00:00 UTC'
    )
    assert "bluegreen:freezeOverride" in message


def test_override_passes(frozen):
    props = edge("", "", freezeOverride="INC-42: revert broken checkout")
    assert run(rules.change_freeze, EDGE, props, WINDOW) == []


def test_arm_deploy_inside_a_freeze_is_refused_and_outside_passes(frozen, monkeypatch):
    props = {
        "color": "green",
        "version": "v3",
        "liveColor": "blue",
        "servingVersion": "v2",
        "replicas": 1,
    }
    assert "Deploying v3 to green denied" in run(rules.change_freeze, ARM, props, WINDOW)[0]
    monkeypatch.setattr(rules, "now", lambda: datetime(2027, 1, 5, tzinfo=UTC))
    assert run(rules.change_freeze, ARM, props, WINDOW) == []


# --- maintenance (advisory) ---------------------------------------------------------------------


def test_maintenance_while_traffic_moves_warns():
    assert (
        "Maintenance mode is on"
        in run(rules.maintenance_during_flip, EDGE, edge("", "", maintenance=True))[0]
    )
    assert run(rules.maintenance_during_flip, EDGE, edge("", "")) == []


# --- policy config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"p95Ratoi": 1.2}, "bluegreen-smoke-test.p95Ratoi is not a known setting"),
        (
            {"samples": "many"},
            'bluegreen-smoke-test.samples must be an integer from 20 to 100000, got "many"',
        ),
        (
            {"samples": 900, "maxSamples": 800},
            "bluegreen-smoke-test.maxSamples must be at least samples (900), got 800",
        ),
        (
            {"p95Ratio": 1.2},
            "bluegreen-smoke-test.p95Ratio is no longer a setting: use latencyTolerance",
        ),
        (
            {"errorTolerance": 2},
            "bluegreen-smoke-test.errorTolerance must be a number from 0 to 0.5, got 2",
        ),
        (
            {"confidence": 0.5},
            "bluegreen-smoke-test.confidence must be a number from 0.8 to 0.999, got 0.5",
        ),
        (
            {"metrics": {"latency": {"group": "speed"}}},
            "bluegreen-smoke-test.metrics.latency.group must be one of the groups (errors, "
            'latency), got "speed"',
        ),
        (
            {"metrics": {"cpu": {}}},
            "bluegreen-smoke-test.metrics.cpu must be under a metric: latency, errors, got {}",
        ),
        (
            {"metrics": {"latency": {"dryRun": True}, "errors": {"dryRun": True}}},
            "bluegreen-smoke-test.metrics must be at least one metric that is not a dry run",
        ),
        (
            {"groups": {"latency": 0, "errors": 50}},
            "bluegreen-smoke-test.groups must be an object of group names to weights above 0",
        ),
        (
            {"passScore": 60, "marginalScore": 70},
            "bluegreen-smoke-test.marginalScore must be at most passScore (60), got 70",
        ),
        ({"goldRequests": [{"path": "no-slash"}]}, "goldRequests[0].path must be a URL path"),
    ],
)
def test_bad_smoke_config_is_rejected_naming_the_key(config, expected):
    # The endpoints do not exist: a bad config must stop the gate before any request.
    [message] = run(
        rules.smoke_test, EDGE, edge("http://127.0.0.1:9", "http://127.0.0.1:9"), config
    )
    assert expected in message


def test_config_file_check_names_unknown_policies_and_bad_windows(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(
        '{"bluegreen-smoke-tset": {}, "bluegreen-change-freeze": {"windows": '
        '[{"name": "x", "start": "2026-12-24T00:00:00Z", "end": "2026-12-01T00:00:00Z"}]}}'
    )
    problems = settings.check_file(str(path))
    assert any("bluegreen-smoke-tset is not a policy of this pack" in p for p in problems)
    assert any(
        "bluegreen-change-freeze.windows[0].end must be after its start" in p for p in problems
    )


def test_shipped_config_is_valid():
    assert settings.check_file("policy/config.json") == []
