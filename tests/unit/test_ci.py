"""The CI path in process: when traffic moved, what the verdict names, what a rollback may change,
and what the workflows say (against real git: tests/integration/test_ci.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bluegreen.live_stack import ArmOutputs, LiveOutputs
from cutover import ci
from cutover import commit_rollback as reverting
from tests.support.ci_cases import LIVE, REASON

GREEN = {"activeColor": "green", "weights": {"blue": 0, "green": 100}, "url": "http://e"}


def served(outputs: dict) -> LiveOutputs:
    return LiveOutputs.from_outputs(outputs)


def test_traffic_moved_is_the_colour_or_the_weights():
    arms = {c: (c, ArmOutputs(version=v)) for c, v in (("blue", "v1"), ("green", "v2"))}
    before = served(ci.snapshot("live", served(GREEN), arms))  # as --if-moved-since reads it
    assert not ci.moved(before, served(GREEN))
    assert not ci.moved(before, served({**GREEN, "maintenance": True}))  # not traffic
    assert ci.moved(before, served({**GREEN, "activeColor": "blue"}))
    assert ci.moved(before, served({**GREEN, "weights": {"blue": 75, "green": 25}}))
    assert ci.moved(served(ci.snapshot("live", served({}), arms)), served(GREEN))  # first deploy


def test_the_verdict_names_the_rollback_only_when_there_was_one():
    held = ci.verdict_record("live", "green", "held", None, {}, 30.0, False)
    assert (held["from"], held["to"], held["rolledBack"]) == (None, None, False)
    breach = ci.verdict_record("live", "green", "breach", REASON, {}, 3.0, True)
    assert (breach["from"], breach["to"], breach["reason"]) == ("green", "blue", REASON)


def test_a_canary_rollback_may_drop_the_canary_weight_but_not_add_one():
    verdict = {"from": "green", "to": "blue"}
    canary = LIVE.format(color="green").replace(
        "  bluegreen:dnsZone", '  bluegreen:canaryWeight: "25"\n  bluegreen:dnsZone'
    )
    reverting.check_revert(canary, LIVE.format(color="blue"), verdict, "Pulumi.live.yaml")
    with pytest.raises(reverting.Refused, match="also bluegreen:canaryWeight"):
        reverting.check_revert(
            LIVE.format(color="green"),
            canary.replace("activeColor: green", "activeColor: blue"),
            verdict,
            "Pulumi.live.yaml",
        )


WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"


def workflow_steps(name: str) -> list[tuple[str, dict]]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    return [(job, step) for job, spec in doc["jobs"].items() for step in spec.get("steps", [])]


def test_no_commit_message_turns_the_deploy_watch_off():
    # A committer chooses the message: a flip whose message said `Bluegreen-Rollback:` used to
    # run unwatched. Whether to watch is decided by what the edge served (--if-moved-since).
    deploy = yaml.safe_load((WORKFLOWS / "deploy.yml").read_text())
    text = json.dumps(deploy)
    for chosen_by_committer in ("head_commit", "github.event.commits", "Bluegreen-Rollback"):
        assert chosen_by_committer not in text
    assert deploy["jobs"]["deploy"]["env"]["WATCH"] == "${{ matrix.stack == 'live' }}"
    watch = next(s for _, s in workflow_steps("deploy.yml") if s.get("id") == "watch")
    assert "--if-moved-since" in watch["run"]


@pytest.mark.parametrize("name", ["deploy.yml", "preview.yml"])
def test_no_checkout_leaves_the_token_on_disk(name):
    checkouts = [
        s for _, s in workflow_steps(name) if s.get("uses", "").startswith("actions/checkout")
    ]
    assert checkouts
    for step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, step
    # The one step that pushes gets the token from its environment, for git through gh.
    pushing = [s for _, s in workflow_steps(name) if "commit-rollback" in s.get("run", "")]
    for step in pushing:
        assert step["env"]["GH_TOKEN"] == "${{ github.token }}"
        assert step["run"].lstrip().startswith("gh auth setup-git")
