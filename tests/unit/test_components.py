"""Component shape under Pulumi mocks: what each stack declares, and under which parent.

`set_mocks` is process-global, so every test installs its own mocks through the fixture.
"""

from __future__ import annotations

import pulumi
import pytest

from tests.support.mocks import StackMocks as Mocks
from tests.support.mocks import build_arm, build_edge, install, stack

STACK_OUTPUTS = {
    "organization/bluegreen/blue": {
        "color": "blue",
        "version": "v1",
        "endpoint": "http://127.0.0.10:18081",
        "nodes": ["127.0.0.10:18081"],
    },
    "organization/bluegreen/green": {
        "color": "green",
        "version": "v2",
        "endpoint": "http://127.0.0.11:18082",
        "nodes": ["127.0.0.11:18082"],
    },
}


@pytest.fixture
def mocks():
    yield install(Mocks(dict(STACK_OUTPUTS)))


@pulumi.runtime.test
def test_arm_declares_one_service_under_the_arm(mocks):
    arm = build_arm(stack("blue", role="arm", color="blue", version="v7", port="18081"))

    def check(args):
        urn, endpoint = args
        service = mocks.created["blue-service"]
        assert service.typ == "pulumi-python:dynamic/local:Process", urn
        assert (
            "--version=v7" in service.inputs["argv"] and "--color=blue" in service.inputs["argv"]
        ), urn
        assert service.inputs["port"] == 18081, urn
        assert endpoint == "http://127.0.0.1:18081", urn

    return pulumi.Output.all(arm.urn, arm.endpoint).apply(check)


@pulumi.runtime.test
def test_arm_type_token_and_parenting(mocks):
    arm = build_arm(stack("green", role="arm", color="green", version="v2", port="18082"))

    def check(urn):
        assert urn.endswith("bluegreen:index:Arm::green"), urn

    return arm.urn.apply(check)


@pytest.mark.parametrize(
    ("active", "weights"),
    [("blue", {"blue": 100, "green": 0}), ("green", {"blue": 0, "green": 100})],
)
def test_edge_weights_follow_the_pointer(mocks, active, weights):
    @pulumi.runtime.test
    def run():
        edge = build_edge(stack("live", role="edge", activeColor=active))

        def check(args):
            urn, _ = args
            nginx = mocks.created["live-nginx"].inputs
            assert nginx["activeColor"] == active, urn
            assert nginx["weights"] == weights, urn
            assert nginx["nodes"] == {"blue": ["127.0.0.10:18081"], "green": ["127.0.0.11:18082"]}
            assert nginx["arms"]["green"] == {
                "endpoint": "http://127.0.0.11:18082",
                "version": "v2",
            }, urn

        return pulumi.Output.all(edge.urn, edge.generation).apply(check)

    run()


def test_edge_refuses_an_arm_stack_without_outputs():
    install(Mocks({"organization/bluegreen/blue": STACK_OUTPUTS["organization/bluegreen/blue"]}))
    from components import arm_from_stack

    view = arm_from_stack(stack("live", role="edge", activeColor="blue").settings, "green")

    @pulumi.runtime.test
    def run():
        return view.endpoint.apply(lambda v: v)

    with pytest.raises(
        pulumi.RunError,
        match=r"The green arm \(stack \"organization/bluegreen/green\"\) has no",
    ):
        run()


@pytest.mark.parametrize(
    ("switch", "live_target"), [("false", ["127.0.0.1"]), ("true", ["127.0.0.10"])]
)
def test_edge_declares_route53_records_with_short_ttls(mocks, switch, live_target):
    """The live name points at the edge (127.0.0.1), or with the DNS switch at the active arm
    (blue, whose node is 127.0.0.10:18081 in the mocked stack outputs)."""

    @pulumi.runtime.test
    def run():
        s = stack(
            "live",
            role="edge",
            activeColor="blue",
            dnsProvider="route53",
            dnsZone="shop.example.com",
            dnsZoneId="Z123",
            dnsSwitch=switch,
        )
        edge = build_edge(s)

        def check(args):
            urn = args[0]
            records = {
                a.inputs["name"]: a.inputs
                for a in mocks.created.values()
                if a.typ == "aws:route53/record:Record"
            }
            assert set(records) == {
                "shop.shop.example.com",
                "blue.shop.example.com",
                "green.shop.example.com",
            }, urn
            assert {r["ttl"] for r in records.values()} == {30}, urn
            assert records["shop.shop.example.com"]["records"] == live_target, urn
            assert records["green.shop.example.com"]["records"] == ["127.0.0.11"], urn

        return pulumi.Output.all(edge.urn, *[r.urn for r in edge.dns_records]).apply(check)

    run()
