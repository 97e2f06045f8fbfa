"""The AWS adapter under Pulumi mocks: what an arm and the live ALB declare, value by value.

No AWS account is involved: the mocks answer every resource with its own inputs plus the few
attributes AWS would compute (ARNs, DNS names), so these tests pin what `pulumi up` would ask AWS
to do. `set_mocks` is process-global, so every test installs its own through the fixture.
"""

from __future__ import annotations

import base64
import json

import pulumi
import pytest

from bluegreen.config import ConfigError
from tests.support.aws_mocks import STACKS, TG_ARN, Mocks, forward_of, settings
from tests.support.mocks import build_arm, build_edge, deploy, install, where


@pytest.fixture
def mocks():
    yield install(Mocks(dict(STACKS)))


def arm_settings(**values):
    return settings(
        "blue",
        role="arm",
        color="blue",
        version="v7",
        ami="ami-0123abcd",
        healthPath="/healthz/ready",
        appPort="8080",
        **values,
    )


# --- arms --------------------------------------------------------------------------------------


def test_arm_target_group_health_checks_the_readiness_path(mocks):
    deploy(lambda: build_arm(arm_settings()))
    tg = mocks.created["blue-tg"]
    assert tg.inputs["port"] == 8080 and tg.inputs["protocol"] == "HTTP", where(tg)
    hc = tg.inputs["healthCheck"]
    assert hc["path"] == "/healthz/ready", where(tg)
    assert hc["matcher"] == "200", where(tg)
    assert hc["protocol"] == "HTTP" and hc["port"] == "traffic-port", where(tg)


def test_arm_group_runs_replicas_instances_in_the_target_group(mocks):
    deploy(lambda: build_arm(arm_settings(replicas="3")))
    group = mocks.created["blue-group"]
    assert group.inputs["desiredCapacity"] == 3, where(group)
    assert group.inputs["minSize"] == 3, where(group)
    assert group.inputs["waitForElbCapacity"] == 3, where(group)
    assert group.inputs["targetGroupArns"] == ["arn:aws:elasticloadbalancing:::blue-tg"], where(
        group
    )
    assert group.inputs["healthCheckType"] == "ELB", where(group)
    assert group.inputs["vpcZoneIdentifiers"] == ["subnet-0aaa1111", "subnet-0bbb2222"], where(
        group
    )
    assert group.inputs["launchTemplate"] == {"id": "blue-launch-id", "version": "1"}, where(group)


def test_arm_instances_boot_the_app_with_colour_and_version(mocks):
    deploy(lambda: build_arm(arm_settings()))
    template = mocks.created["blue-launch"]
    assert template.inputs["imageId"] == "ami-0123abcd", where(template)
    script = base64.b64decode(template.inputs["userData"]).decode()
    assert "--color=blue" in script and "--version=v7" in script, where(template)
    assert "--port=8080" in script and "--health-path=/healthz/ready" in script, where(template)
    sg = mocks.created["blue-instances"]
    (rule,) = sg.inputs["ingress"]
    assert (rule["fromPort"], rule["cidrBlocks"]) == (8080, ["10.0.0.0/16"]), where(sg)


@pulumi.runtime.test
def test_arm_direct_endpoint_is_its_own_alb(mocks):
    arm = build_arm(arm_settings())

    def check(args):
        urn, endpoint, nodes, tg_arn = args
        assert endpoint == "http://blue-direct-123.eu-west-1.elb.amazonaws.com", urn
        assert nodes == ["blue-direct-123.eu-west-1.elb.amazonaws.com:80"], urn
        assert tg_arn == "arn:aws:elasticloadbalancing:::blue-tg", urn
        # The endpoint resolves after the listener, so the listener is there to look at.
        listener = mocks.created["blue-direct-http"]
        assert listener.inputs["defaultActions"][0]["targetGroupArn"] == tg_arn, where(listener)

    return pulumi.Output.all(arm.urn, arm.endpoint, arm.nodes, arm.exports["targetGroupArn"]).apply(
        check
    )


def test_user_data_refuses_what_could_break_out_of_the_unit():
    from platforms.aws.aws_arm import _safe

    with pytest.raises(ValueError, match="refusing"):
        _safe("v1\nExecStartPre=/bin/rm -rf /")
    with pytest.raises(ValueError, match="refusing"):
        _safe("v1; curl evil")


# --- the live ALB --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("active", "canary", "expected"),
    [
        ("blue", None, {"blue": 100, "green": 0}),
        ("green", None, {"blue": 0, "green": 100}),
        ("green", "25", {"blue": 75, "green": 25}),
    ],
)
def test_listener_weights_follow_the_pointer(mocks, active, canary, expected):
    values = {"role": "edge", "activeColor": active}
    if canary:
        values["canaryWeight"] = canary
    deploy(lambda: build_edge(settings("live", **values)))
    listener = mocks.created["live-http"]
    forward = forward_of(listener)
    # Blue first, always: the flip's diff is the two weights and nothing else.
    assert [(tg["arn"], tg["weight"]) for tg in forward["targetGroups"]] == [
        (TG_ARN.format("blue"), expected["blue"]),
        (TG_ARN.format("green"), expected["green"]),
    ], where(listener)
    assert "stickiness" not in forward, where(listener)


def test_listener_keeps_clients_on_one_target_group_when_stickiness_is_set(mocks):
    s = settings(
        "live", role="edge", activeColor="green", canaryWeight="25", stickinessSeconds="600"
    )
    deploy(lambda: build_edge(s))
    listener = mocks.created["live-http"]
    assert forward_of(listener)["stickiness"] == {"enabled": True, "duration": 600}, where(listener)


def test_alb_takes_http_and_https_in_its_subnets(mocks):
    deploy(lambda: build_edge(settings("live", role="edge", activeColor="blue")))
    alb = mocks.created["live-alb"]
    assert alb.inputs["loadBalancerType"] == "application", where(alb)
    assert alb.inputs["subnets"] == ["subnet-0aaa1111", "subnet-0bbb2222"], where(alb)
    sg = mocks.created["live-alb-sg"]
    assert sorted(r["fromPort"] for r in sg.inputs["ingress"]) == [80, 443], where(sg)
    assert alb.inputs["securityGroups"] == ["live-alb-sg-id"], where(alb)


@pulumi.runtime.test
def test_edge_url_and_dns_exports_are_the_alb(mocks):
    edge = build_edge(settings("live", role="edge", activeColor="blue"))

    def check(args):
        urn, url, dns_name, zone = args
        assert url == "http://live-alb-123.eu-west-1.elb.amazonaws.com/", urn
        assert dns_name == "live-alb-123.eu-west-1.elb.amazonaws.com", urn
        assert zone == "Z32O12XQLNTSW2", urn

    return pulumi.Output.all(
        edge.urn, edge.url, edge.exports["albDnsName"], edge.exports["albZoneId"]
    ).apply(check)


def test_https_listener_with_a_certificate_and_http_redirects(mocks):
    cert = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
    deploy(
        lambda: build_edge(settings("live", role="edge", activeColor="blue", certificateArn=cert))
    )
    https = mocks.created["live-https"]
    assert https.inputs["port"] == 443 and https.inputs["protocol"] == "HTTPS", where(https)
    assert https.inputs["certificateArn"] == cert, where(https)
    assert forward_of(https)["targetGroups"][0]["weight"] == 100, where(https)
    http = mocks.created["live-http"]
    (redirect,) = http.inputs["defaultActions"]
    assert redirect["type"] == "redirect", where(http)
    assert redirect["redirect"]["protocol"] == "HTTPS", where(http)


def test_maintenance_rule_answers_writes_with_503_and_a_json_body(mocks):
    s = settings(
        "live", role="edge", activeColor="blue", maintenance="true", maintenanceRetryAfter="90"
    )
    deploy(lambda: build_edge(s))
    rule = mocks.created["live-maintenance"]
    assert rule.inputs["priority"] == 10, where(rule)
    assert rule.inputs["listenerArn"] == "arn:aws:elasticloadbalancing:::live-http", where(rule)
    (condition,) = rule.inputs["conditions"]
    assert condition["httpRequestMethod"]["values"] == ["POST", "PUT", "PATCH", "DELETE"], where(
        rule
    )
    (action,) = rule.inputs["actions"]
    fixed = action["fixedResponse"]
    assert action["type"] == "fixed-response", where(rule)
    assert fixed["statusCode"] == "503", where(rule)
    assert fixed["contentType"] == "application/json", where(rule)
    body = json.loads(fixed["messageBody"])
    assert body["error"] == "maintenance" and body["retryAfter"] == 90, where(rule)


def test_no_maintenance_rule_when_maintenance_is_off(mocks):
    deploy(lambda: build_edge(settings("live", role="edge", activeColor="blue")))
    rules = [where(a) for a in mocks.created.values() if a.typ.startswith("aws:lb/listenerRule")]
    assert rules == [], f"maintenance is off but the edge declares {rules}"
    assert "live-http" in mocks.created, "the program did not run to the listener"


def test_edge_refuses_an_arm_deployed_on_another_platform(mocks):
    from platforms.aws.alb_switch import arm_output
    from platforms.base import ArmView

    not_aws = dict(STACKS["organization/bluegreen/green"])
    del not_aws["targetGroupArn"]
    view = ArmView(
        "green", not_aws["endpoint"], "v2", not_aws["nodes"], pulumi.Output.from_input(not_aws)
    )

    @pulumi.runtime.test
    def run():
        return arm_output(view, "targetGroupArn")

    with pytest.raises(pulumi.RunError, match="green arm has no targetGroupArn"):
        run()


def test_a_certificate_that_is_not_an_arn_is_refused():
    with pytest.raises(ConfigError, match="bluegreen:certificateArn must be an ACM"):
        settings("live", role="edge", activeColor="blue", certificateArn="my-cert")


@pytest.mark.parametrize(("canary", "color"), [(None, "green"), ("25", None)])
def test_the_flip_is_confirmed_through_the_alb(mocks, canary, color):
    values = {"role": "edge", "activeColor": "green"}
    if canary:
        values["canaryWeight"] = canary

    @pulumi.runtime.test
    def program():
        edge = build_edge(settings("live", **values))
        return pulumi.Output.all(edge.urn, *edge.exports.values())

    program()
    confirm = mocks.created["live-confirm"]
    assert confirm.typ == "pulumi-python:dynamic/edge:TrafficConfirmation", where(confirm)
    assert confirm.inputs["url"] == "http://live-alb-123.eu-west-1.elb.amazonaws.com/"
    assert confirm.inputs.get("color") == color, where(confirm)


def test_route53_names_are_cnames_to_the_albs_so_the_ttl_stays_short(mocks):
    s = settings(
        "live",
        role="edge",
        activeColor="blue",
        dnsProvider="route53",
        dnsZone="shop.example.com",
        dnsZoneId="Z1",
    )

    @pulumi.runtime.test
    def program():
        edge = build_edge(s)
        return pulumi.Output.all(*[r.urn for r in edge.dns_records])

    program()
    records = {
        a.inputs["name"]: a.inputs
        for a in mocks.created.values()
        if a.typ == "aws:route53/record:Record"
    }
    live = records["shop.shop.example.com"]
    # An alias to an ALB would be served with the ALB's own 60 s; a CNAME keeps 30 s.
    assert (live["type"], live["ttl"]) == ("CNAME", 30)
    assert live["records"] == ["live-alb-123.eu-west-1.elb.amazonaws.com"]
    assert {r["type"] for r in records.values()} == {"CNAME"}


# --- the hold's metrics source -------------------------------------------------------------------


def test_the_hold_reads_cloudwatch_for_the_live_alb_per_arm_target_group(mocks):
    seen: dict = {}

    @pulumi.runtime.test
    def program():
        edge = build_edge(settings("live", role="edge", activeColor="green", canaryWeight="25"))
        return pulumi.Output.all(edge.urn, edge.exports["metrics"].apply(seen.update))

    program()
    assert seen == {
        "source": "cloudwatch",
        "region": "eu-west-1",
        "loadBalancer": "app/live-alb/50dc6c495c0c9188",
        "targetGroups": {
            "blue": "targetgroup/blue/0123456789abcdef",
            "green": "targetgroup/green/0123456789abcdef",
        },
    }
    # The very target groups the live listener forwards to, colour for colour.
    forward = forward_of(mocks.created["live-http"])
    arns = [tg["arn"] for tg in forward["targetGroups"]]
    assert arns == [
        f"{TG_ARN.split(':targetgroup')[0]}:{seen['targetGroups'][c]}" for c in ("blue", "green")
    ]


@pytest.mark.parametrize("value", ["prometheus", "accessLog"])
def test_aws_offers_only_cloudwatch(value):
    with pytest.raises(ConfigError) as err:
        settings("live", role="edge", activeColor="blue", metrics=value)
    assert f'bluegreen:metrics must be "cloudwatch" on the aws platform, got "{value}"' in str(
        err.value
    )


def test_a_target_group_arn_suffix_is_what_cloudwatch_names_it_by():
    from platforms.aws.alb_metrics import arn_suffix

    assert arn_suffix(TG_ARN.format("blue")) == "targetgroup/blue/0123456789abcdef"
    with pytest.raises(pulumi.RunError, match="is not the ARN of an ALB or of its target group"):
        arn_suffix("blue-tg")


# --- what an ALB cannot do -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "key", "shown", "allowed", "why"),
    [
        ({"cache": "true"}, "cache", "true", "set it to false", "has no cache"),
        (
            {"cache": "true", "cacheWarmPaths": '["/", "/assets/app.js"]'},
            "cacheWarmPaths",
            '["/", "/assets/app.js"]',
            "leave it unset",
            "has no cache to warm",
        ),
        ({"shadow": "10"}, "shadow", "10", "set it to 0", "has no request mirroring"),
        ({"rateLimit": "200"}, "rateLimit", "200", "set it to 0", "has no request-rate limit"),
        (
            {"connectionLimit": "500"},
            "connectionLimit",
            "500",
            "set it to 0",
            "has no connection cap",
        ),
        (
            {"maintenanceQueue": "/orders,/cart"},
            "maintenanceQueue",
            '"/orders,/cart"',
            'set it to ""',
            "cannot pass writes to a queue service during maintenance",
        ),
        (
            {"maintenanceStart": "2026-11-24T01:00:00Z"},
            "maintenanceStart",
            '"2026-11-24T01:00:00Z"',
            'set it to ""',
            "cannot serve the window's status page",
        ),
    ],
)
def test_what_an_alb_cannot_do_is_refused_before_anything_is_declared(
    mocks, values, key, shown, allowed, why
):
    with pytest.raises(ConfigError) as err:
        deploy(lambda: build_edge(settings("live", role="edge", activeColor="blue", **values)))
    (problem,) = [p for p in err.value.problems if p.startswith(f"bluegreen:{key} ")]
    assert problem.startswith(f"bluegreen:{key} is {shown}, but the aws edge (an ALB) {why}")
    assert f"{allowed}, the only value on aws" in problem
    assert problem.endswith("(nothing was changed)")
    assert mocks.created == {}, f"refused config, yet {list(mocks.created)} were declared"


def test_the_backpressure_refusals_point_at_aws_waf():
    with pytest.raises(ConfigError) as err:
        settings("live", role="edge", activeColor="blue", rateLimit="200", connectionLimit="500")
    assert [p.split(" ", 1)[0] for p in err.value.problems] == [
        "bluegreen:rateLimit",
        "bluegreen:connectionLimit",
    ]
    for problem in err.value.problems:
        assert "an AWS WAF rate-based rule on the ALB is the AWS way, outside bluegreen" in problem


def test_the_alb_accepts_what_it_leaves_alone():
    """Settings that only shape a feature that is off are not refused: the defaults pass, and so
    do the knobs of a limit that is 0."""
    loaded = settings(
        "live",
        role="edge",
        activeColor="blue",
        shadowWrites="true",
        cacheMaxSizeMb="512",
        rateLimitBurst="20",
        limitWhen="hold",
    )
    assert loaded.platform.refusals(loaded.settings) == []
