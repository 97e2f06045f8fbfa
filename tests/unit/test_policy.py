"""Every policy, pass and violation, called directly with argument objects built here (the smoke
test against real reference services: tests/integration/test_policy.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bluegreen_policy import rules, settings, state
from pulumi_policy import PolicyResourceOptions, ResourceValidationArgs
from pulumi_policy.proxy import unknown_checking_proxy

from tests.support.policy_cases import (
    ARM,
    EDGE,
    LIVE_STACK,
    SAMPLE,
    as_engine_sends,
    edge,
    run,
)


def test_no_traffic_moving_means_no_smoke_test():
    # Both endpoints are unreachable: any request the policy made would be a violation.
    props = edge("http://127.0.0.1:9", "http://127.0.0.1:9", active="blue", previous="blue")
    assert run(rules.smoke_test, EDGE, props, SAMPLE) == []


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


def test_maintenance_while_traffic_moves_warns():
    assert (
        "Maintenance mode is on"
        in run(rules.maintenance_during_flip, EDGE, edge("", "", maintenance=True))[0]
    )
    assert run(rules.maintenance_during_flip, EDGE, edge("", "")) == []


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
