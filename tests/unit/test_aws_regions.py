"""Several edges on AWS under Pulumi mocks: one ALB per site of bluegreen:edges, each in its own
region through a provider of its own, behind the live name with Route 53 latency routing and a
health check per edge; a flip in waves keeps the sites it does not move on their weights.

As in test_aws.py, the mocks answer each resource with its inputs plus what AWS computes, so these
tests pin what `pulumi up` would ask AWS to do, region by region.
"""

from __future__ import annotations

import json

import pulumi
import pytest

from bluegreen.config import ConfigError
from bluegreen.config_parts.edge_sites import MOVING_ENV
from tests.support.aws_mocks import (
    LIVE,
    STACKS,
    TG_ARN,
    RegionMocks,
    settings,
    weights_of,
)
from tests.support.mocks import build_edge, deploy, install, where

EU = "eu-west-1:vpc-0123abcd:subnet-0aaa1111:subnet-0bbb2222"
US = "us-east-1:vpc-0aaa1111:subnet-0ccc3333:subnet-0ddd4444"
AP = "ap-southeast-2:vpc-0bbb2222:subnet-0eee5555:subnet-0fff6666"
EDGES = json.dumps({"eu": "eu-west-1", "us": US, "ap": AP})
ZONE = {"dnsProvider": "route53", "dnsZone": "shop.example.com", "dnsZoneId": "Z1"}


def regional_tg(color: str, region: str) -> str:
    return TG_ARN.format(color).replace("eu-west-1", region)


def regional_stacks() -> dict:
    """The arms with a target group in each region (the edge needs one per site's region)."""
    stacks = {}
    for name, outputs in STACKS.items():
        color = outputs["color"]
        others = {r: regional_tg(color, r) for r in ("us-east-1", "ap-southeast-2")}
        stacks[name] = {**outputs, "targetGroupArns": others}
    return stacks


@pytest.fixture
def mocks():
    yield install(RegionMocks(regional_stacks()))


def edge_of(active: str = "blue", **values):
    return settings("live", role="edge", activeColor=active, edges=EDGES, **values)


def run(s) -> dict:
    """Run the edge program; return its resolved exports."""
    seen: dict = {}

    @pulumi.runtime.test
    def program():
        edge = build_edge(s)
        outs = [r.urn for r in edge.dns_records]
        return pulumi.Output.all(edge.urn, *outs, pulumi.Output.all(**edge.exports)).apply(
            lambda v: seen.update(v[-1])
        )

    program()
    return seen


def of_type(mocks, typ: str) -> dict[str, pulumi.runtime.MockResourceArgs]:
    return {n: a for n, a in mocks.created.items() if a.typ == typ}


# --- one ALB per region --------------------------------------------------------------------------


def test_each_site_is_an_alb_in_its_region_through_a_provider_of_its_own(mocks):
    run(edge_of("green"))
    providers = of_type(mocks, "pulumi:providers:aws")
    # The first site keeps the stack's default provider; the others get one for their region.
    assert {n: a.inputs["region"] for n, a in providers.items()} == {
        "live-aws-us": "us-east-1",
        "live-aws-ap": "ap-southeast-2",
    }
    albs = of_type(mocks, "aws:lb/loadBalancer:LoadBalancer")
    assert sorted(albs) == ["live-alb", "live-alb-ap", "live-alb-us"]
    assert albs["live-alb"].provider == "", where(albs["live-alb"])
    assert albs["live-alb"].inputs["subnets"] == ["subnet-0aaa1111", "subnet-0bbb2222"]
    for site, place in (("us", US), ("ap", AP)):
        alb, sg = albs[f"live-alb-{site}"], mocks.created[f"live-alb-{site}-sg"]
        region, vpc, *subnets = place.split(":")
        assert alb.provider.endswith(f"::live-aws-{site}::live-aws-{site}-id"), where(alb)
        assert alb.inputs["subnets"] == subnets, where(alb)
        assert sg.inputs["vpcId"] == vpc and sg.provider == alb.provider, where(sg)
        assert alb.inputs["securityGroups"] == [f"live-alb-{site}-sg-id"], where(alb)
        listener = mocks.created[f"live-http-{site}"]
        assert listener.provider == alb.provider, where(listener)
        # Each region's listener forwards to the arms' target groups in its own region.
        assert weights_of(listener) == [
            (regional_tg("blue", region), 0),
            (regional_tg("green", region), 100),
        ], where(listener)
        confirm = mocks.created[f"live-confirm-{site}"]
        assert confirm.inputs["url"] == f"http://live-alb-{site}-123.{region}.elb.amazonaws.com/"
        assert confirm.inputs["color"] == "green", where(confirm)
    assert weights_of(mocks.created["live-http"]) == [
        (TG_ARN.format("blue"), 0),
        (TG_ARN.format("green"), 100),
    ]
    assert LIVE not in mocks.read, "an update that moves every site read the stack's own outputs"


def test_maintenance_and_https_reach_every_site(mocks):
    cert = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
    run(edge_of(certificateArn=cert, maintenance="true"))
    for suffix in ("", "-us", "-ap"):
        https, rule = (
            mocks.created[f"live-https{suffix}"],
            mocks.created[f"live-maintenance{suffix}"],
        )
        assert https.inputs["port"] == 443, where(https)
        assert rule.inputs["listenerArn"].endswith(f"live-https{suffix}"), where(rule)
        assert rule.provider == https.provider, where(rule)


def test_one_edge_grows_into_several_without_replacing_its_alb(mocks):
    """The first site declares what the single edge declared, input for input, so adding
    bluegreen:edges to a stack adds the other regions and changes nothing that is there."""
    deploy(lambda: build_edge(settings("live", role="edge", activeColor="blue")))
    single = dict(mocks.created)
    assert not of_type(mocks, "pulumi:providers:aws"), "one edge uses the default provider"
    aws_names = sorted(n for n, a in single.items() if a.typ.startswith("aws:"))
    assert aws_names == ["live-alb", "live-alb-sg", "live-http"]
    several = install(RegionMocks(regional_stacks()))
    run(edge_of())
    for name in [*aws_names, "live-confirm"]:
        before, after = single[name], several.created[name]
        assert (after.typ, after.inputs, after.provider) == (
            before.typ,
            before.inputs,
            before.provider,
        ), name


# --- Route 53: the nearest healthy edge ---------------------------------------------------------


@pytest.mark.parametrize(("cert", "scheme", "port"), [(None, "HTTP", 80), ("arn", "HTTPS", 443)])
def test_the_live_name_routes_by_latency_to_healthy_edges(mocks, cert, scheme, port):
    extra = {"certificateArn": "arn:aws:acm:eu-west-1:1:certificate/x"} if cert else {}
    run(edge_of(healthPath="/healthz/ready", dnsTtl="20", **ZONE, **extra))
    checks = of_type(mocks, "aws:route53/healthCheck:HealthCheck")
    assert sorted(checks) == ["live-health-ap", "live-health-eu", "live-health-us"]
    records = of_type(mocks, "aws:route53/record:Record")
    live = {
        a.inputs["setIdentifier"]: (n, a) for n, a in records.items() if "setIdentifier" in a.inputs
    }
    assert sorted(live) == ["ap", "eu", "us"]
    for site, region, alb in (
        ("eu", "eu-west-1", "live-alb"),
        ("us", "us-east-1", "live-alb-us"),
        ("ap", "ap-southeast-2", "live-alb-ap"),
    ):
        host = f"{alb}-123.{region}.elb.amazonaws.com"
        check = checks[f"live-health-{site}"].inputs
        assert (check["type"], check["fqdn"], check["port"]) == (scheme, host, port), site
        assert check["resourcePath"] == "/healthz/ready", site
        assert (check["requestInterval"], check["failureThreshold"]) == (10, 2), site
        name, record = live[site]
        assert name == ("live-dns-shop" if site == "eu" else f"live-dns-shop-{site}")
        r = record.inputs
        assert (r["name"], r["type"], r["ttl"], r["records"]) == (
            "shop.shop.example.com",
            "CNAME",
            20,
            [host],
        ), name
        assert r["latencyRoutingPolicies"] == [{"region": region}], name
        assert r["healthCheckId"] == f"live-health-{site}-id", name
    # The arms' own names stay one plain record each.
    arms = {a.inputs["name"]: a.inputs for a in records.values() if "setIdentifier" not in a.inputs}
    assert sorted(arms) == ["blue.shop.example.com", "green.shop.example.com"]
    assert arms["blue.shop.example.com"]["records"] == [
        "blue-direct-123.eu-west-1.elb.amazonaws.com"
    ]


def test_one_edge_keeps_its_plain_record_and_no_health_check(mocks):
    deploy(lambda: build_edge(settings("live", role="edge", activeColor="blue", **ZONE)))
    assert not of_type(mocks, "aws:route53/healthCheck:HealthCheck")
    live = mocks.created["live-dns-shop"].inputs
    assert "setIdentifier" not in live and "healthCheckId" not in live


# --- a flip in waves ---------------------------------------------------------------------------


def test_a_wave_moves_its_sites_and_keeps_the_others_on_what_they_served(monkeypatch):
    before = {
        "edges": {
            "eu": {"activeColor": "blue", "weights": {"blue": 100, "green": 0}},
            "us": {"activeColor": "blue", "weights": {"blue": 100, "green": 0}},
        }
    }
    mocks = install(RegionMocks(regional_stacks(), before))
    monkeypatch.setenv(MOVING_ENV, '["eu"]')
    exports = run(edge_of("green"))
    assert mocks.read.count(LIVE) == 1, "the held sites' weights come from the last outputs"
    assert weights_of(mocks.created["live-http"])[1] == (TG_ARN.format("green"), 100)
    us = mocks.created["live-http-us"]
    assert weights_of(us) == [
        (regional_tg("blue", "us-east-1"), 100),
        (regional_tg("green", "us-east-1"), 0),
    ]
    assert mocks.created["live-confirm-us"].inputs["color"] == "blue"
    # A site with no last output (never deployed) takes the pointer.
    assert weights_of(mocks.created["live-http-ap"])[1][1] == 100
    assert {s: (e["activeColor"], e["weights"]["green"]) for s, e in exports["edges"].items()} == {
        "eu": ("green", 100),
        "us": ("blue", 0),
        "ap": ("green", 100),
    }


# --- exports -------------------------------------------------------------------------------------


def test_each_site_exports_its_url_region_traffic_and_cloudwatch_source(mocks):
    exports = run(edge_of())
    assert exports["edges"]["us"] == {
        "url": "http://live-alb-us-123.us-east-1.elb.amazonaws.com/",
        "region": "us-east-1",
        "activeColor": "blue",
        "weights": {"blue": 100, "green": 0},
    }
    assert exports["edges"]["eu"]["url"] == "http://live-alb-123.eu-west-1.elb.amazonaws.com/"
    metrics = exports["metrics"]
    # The first site's source as a single edge's, for the hold as it reads it today.
    assert (metrics["source"], metrics["loadBalancer"]) == (
        "cloudwatch",
        "app/live-alb/50dc6c495c0c9188",
    )
    assert metrics["sites"]["ap"] == {
        "region": "ap-southeast-2",
        "loadBalancer": "app/live-alb-ap/50dc6c495c0c9188",
        "targetGroups": {c: f"targetgroup/{c}/0123456789abcdef" for c in ("blue", "green")},
    }
    assert exports["albDnsName"] == "live-alb-123.eu-west-1.elb.amazonaws.com"


# --- refused -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edges", "why"),
    [
        ({"eu": "eu-west-x"}, "eu: 'eu-west-x' is not an AWS region"),
        ({"eu": "127.0.0.1"}, "eu: '127.0.0.1' is not an AWS region"),
        (
            {"eu": "eu-west-1", "eu2": US.replace("us-east-1", "eu-west-1")},
            "eu2: eu-west-1 is already eu's region",
        ),
        ({"eu": "eu-west-1", "us": "us-east-1"}, "us: the VPC and subnets of its ALB in us-east-1"),
        (
            {"eu": "eu-west-1", "us": US.replace("vpc-0aaa1111", "vpc-mine")},
            "us: 'vpc-mine' is not a VPC id",
        ),
        (
            {"eu": "eu-west-1", "us": "us-east-1:vpc-0aaa1111:subnet-0ccc3333"},
            "us: an ALB needs at least two different subnets",
        ),
        (
            {"eu": "eu-west-1", "us": "us-east-1:vpc-0aaa1111:subnet-0ccc3333:sn-1"},
            "us: 'sn-1' is not a subnet id",
        ),
    ],
)
def test_a_place_that_is_not_a_region_is_refused_before_anything_is_declared(mocks, edges, why):
    given = json.dumps(edges)
    with pytest.raises(ConfigError) as err:
        deploy(lambda: build_edge(settings("live", role="edge", activeColor="blue", edges=given)))
    (problem,) = [p for p in err.value.problems if p.startswith("bluegreen:edges ")]
    assert problem.startswith("bluegreen:edges must give an AWS region for each site on the aws")
    assert f"got {given}: " in problem and why in problem, problem
    assert problem.endswith("(nothing was changed)")
    assert mocks.created == {}, f"refused config, yet {list(mocks.created)} were declared"


def test_several_albs_behind_one_rfc2136_name_are_refused():
    with pytest.raises(ConfigError) as err:
        edge_of(dnsProvider="rfc2136", dnsZone="shop.example.com", tsigKeyName="bluegreen")
    (problem,) = [p for p in err.value.problems if p.startswith("bluegreen:dnsProvider ")]
    assert problem.startswith('bluegreen:dnsProvider is "rfc2136", but the live name cannot')
    assert 'set it to "route53"' in problem and problem.endswith("(nothing was changed)")


def test_the_first_site_must_be_in_the_stack_region(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    edge_of().preflight()  # eu-west-1 first: fine
    loaded = settings(
        "live", role="edge", activeColor="blue", edges=json.dumps({"us": US, "eu": EU})
    )
    with pytest.raises(ConfigError) as err:
        loaded.preflight()
    (problem,) = err.value.problems
    assert problem.startswith("bluegreen:edges lists us first, in us-east-1, but the stack's")
    assert "list first the site in eu-west-1" in problem
    assert problem.endswith("(nothing was changed)")


def test_a_region_the_arms_have_no_target_group_in_fails_naming_the_site():
    from platforms.aws import alb_sites
    from platforms.base import ArmView

    install(RegionMocks(regional_stacks()))
    loaded = edge_of()
    (us,) = [s for s in alb_sites.sites(loaded.settings, loaded.platform.network) if s.name == "us"]
    # The blue arm as the aws arm deploys it: a target group in its own region only.
    o = STACKS["organization/bluegreen/blue"]
    blue = ArmView("blue", o["endpoint"], o["version"], o["nodes"], pulumi.Output.from_input(o))

    @pulumi.runtime.test
    def program():
        return alb_sites.target_groups({"blue": blue, "green": blue}, us)["blue"]

    with pytest.raises(pulumi.RunError, match="The edge us of bluegreen:edges is in us-east-1"):
        program()
