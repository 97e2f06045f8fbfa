"""What tests/unit/test_policy.py and tests/integration/test_policy.py share."""

from __future__ import annotations

import pytest
from bluegreen_policy import rules, state
from pulumi_policy import PolicyResourceOptions, ResourceValidationArgs
from pulumi_policy.proxy import unknown_checking_proxy

EDGE, ARM = rules.EDGE, rules.ARM


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
