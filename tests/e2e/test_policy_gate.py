"""The policy pack guarding real flips and arm deploys through the real CLI and a real nginx."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from cutover.workspace import PulumiError
from tests.support.watcher import Watcher


def refused(project, stack: str) -> str:
    with pytest.raises(PulumiError) as err:
        project.ws.up(stack)
    return err.value.output


def flip_is_refused(project, expected: str) -> None:
    """Try to flip to green; it must fail with `expected`, and blue must answer every request."""
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    with Watcher(project.edge_url) as watch:
        out = refused(project, "live")
    assert "bluegreen-smoke-test" in out and expected in out, out
    assert watch.seen and set(watch.seen) == {"blue"}, f"during the refused flip: {set(watch.seen)}"
    assert project.colors(20) == ["blue"] * 20
    # A refused update records nothing as live: the same `pulumi up` again is judged again.
    assert project.ws.outputs("live")["activeColor"] == "blue"
    assert expected in refused(project, "live")
    assert project.colors(20) == ["blue"] * 20


def test_flip_to_an_unhealthy_green_is_refused(project):
    project.ws.config_set("green", "bluegreen:simulate", "ready-status=500")
    project.up_all(active="blue")
    flip_is_refused(project, "Flip to green denied: green is not ready")


def test_flip_to_green_serving_the_wrong_version_is_refused(project):
    project.ws.config_set("green", "bluegreen:simulate", "serve-version=v2-hotfix")
    project.up_all(active="blue")
    flip_is_refused(project, "green serves version v2-hotfix")


def test_flip_to_a_slow_green_is_refused(project):
    project.ws.config_set("blue", "bluegreen:simulate", "delay-ms=2")
    project.ws.config_set("green", "bluegreen:simulate", "delay-ms=12")  # 10 ms more
    project.up_all(active="blue")
    flip_is_refused(
        project,
        "Flip to green denied: green is worse than blue: latency: green is slower than blue",
    )


def test_a_good_green_passes_and_the_flip_happens(project):
    project.up_all(active="blue")
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    preview = project.ws.preview("live").stdout
    assert "bluegreen@v0.0.1" in preview and "mandatory" not in preview
    project.ws.up("live")
    assert project.colors(20) == ["green"] * 20


def test_deploys_to_the_live_arm_are_refused_and_to_the_idle_arm_pass(project):
    project.up_all(active="blue")
    project.ws.config_set("blue", "bluegreen:version", "v3")
    out = refused(project, "blue")
    assert "Deploy to blue denied: blue is the live arm" in out
    assert "Deploy v3 to the idle arm green (pulumi up -s green) and flip." in out
    assert project.colors(10) == ["blue"] * 10
    project.ws.config_set("blue", "bluegreen:version", "v1")
    project.ws.config_set("green", "bluegreen:version", "v3")
    project.ws.up("green")
    assert project.ws.outputs("green")["version"] == "v3"


def test_first_arm_deploy_works_before_the_live_stack_exists(project):
    project.ws.up("green")  # the live stack has never been deployed
    assert project.ws.outputs("green")["version"] == "v2"


def test_a_freeze_window_refuses_the_flip_and_an_override_passes(project):
    now = datetime.now(UTC)
    config_path = os.path.join(project.dir, "policy", "config.json")
    with open(config_path) as f:
        config = json.load(f)
    config["bluegreen-change-freeze"] = {
        "windows": [
            {
                "name": "year-end",
                "start": (now - timedelta(hours=1)).isoformat(),
                "end": (now + timedelta(hours=1)).isoformat(),
            }
        ]
    }
    with open(config_path, "w") as f:
        json.dump(config, f)
    project.up_all(active="blue")  # first deploys are not changes a freeze stops
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    out = refused(project, "live")
    assert 'Moving traffic to green denied: change freeze "year-end"' in out
    assert project.colors(10) == ["blue"] * 10
    project.ws.config_set("live", "bluegreen:freezeOverride", "INC-7 checkout is down on blue")
    out = project.ws.up("live").stdout
    assert "change-freeze override in effect: INC-7 checkout is down on blue" in out
    assert project.colors(10) == ["green"] * 10


def test_a_bad_policy_config_is_rejected_naming_the_key(deployed):
    project = deployed
    with open(os.path.join(project.dir, "policy", "config.json"), "w") as f:
        json.dump({"bluegreen-smoke-test": {"latencyTolerance": -0.1}}, f)
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    out = refused(project, "live")
    assert "bluegreen-smoke-test.latencyTolerance must be a number from 0 to 10, got -0.1" in out
    assert project.colors(10) == ["blue"] * 10
