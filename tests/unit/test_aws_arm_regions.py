"""An aws arm in several regions (bluegreen:armRegions) under Pulumi mocks: each extra region gets,
through a provider of its own, the arm's instances and a target group there, and the arm exports
every region's target group, which is what an edge's ALB in that region forwards to.

As in test_aws.py, the mocks answer each resource with its inputs plus what AWS computes; here a
target group's ARN names its provider's region, as AWS's does.
"""

from __future__ import annotations

import base64
import json

import pulumi
import pytest

from bluegreen.config import ConfigError
from tests.support.aws_mocks import RegionMocks, settings, weights_of
from tests.support.mocks import build_arm, build_edge, deploy, install, where

US = "vpc-0aaa1111:subnet-0ccc3333:subnet-0ddd4444"
AP = "vpc-0bbb2222:subnet-0eee5555:subnet-0fff6666:ami-0456cdef"
REGIONS = json.dumps({"us-east-1": US, "ap-southeast-2": AP})
HOME_ONLY = [
    "blue-direct",
    "blue-direct-http",
    "blue-direct-sg",
    "blue-group",
    "blue-instances",
    "blue-launch",
    "blue-tg",
]


class ArnMocks(RegionMocks):
    """RegionMocks with each target group's ARN in its provider's region, and the invokes kept."""

    def __init__(self, stacks: dict | None = None) -> None:
        super().__init__(stacks or {})
        self.calls: list[pulumi.runtime.MockCallArgs] = []

    def state(self, args: pulumi.runtime.MockResourceArgs) -> dict:
        state = super().state(args)
        if args.typ == "aws:lb/targetGroup:TargetGroup":
            region = self.regions.get((args.provider or "").rsplit("::", 1)[-1], "eu-west-1")
            state["arn"] = tg_arn(args.name, region)
        return state

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.calls.append(args)
        return super().call(args)


def tg_arn(name: str, region: str) -> str:
    return f"arn:aws:elasticloadbalancing:{region}:123456789012:targetgroup/{name}/0123456789abcdef"


@pytest.fixture
def mocks():
    yield install(ArnMocks())


def arm_of(color: str = "blue", version: str = "v7", **values):
    return settings(
        color,
        role="arm",
        color=color,
        version=version,
        ami="ami-0123abcd",
        healthPath="/healthz/ready",
        appPort="8080",
        **values,
    )


def run_arm(loaded) -> dict:
    """Deploy an arm; return its stack's outputs as the edge reads them."""
    seen: dict = {}

    @pulumi.runtime.test
    def program():
        arm = build_arm(loaded)
        outputs = {
            "color": arm.color,
            "version": arm.version,
            "endpoint": arm.endpoint,
            "nodes": arm.nodes,
            **arm.exports,
        }
        return pulumi.Output.all(**outputs).apply(seen.update)

    program()
    return seen


def aws_resources(mocks) -> dict[str, pulumi.runtime.MockResourceArgs]:
    return {n: a for n, a in mocks.created.items() if a.typ.startswith(("aws:", "pulumi:prov"))}


# --- the arm in several regions ---------------------------------------------------------------


def test_each_region_gets_the_arms_instances_and_target_group_through_its_provider(mocks):
    outputs = run_arm(arm_of(armRegions=REGIONS, replicas="3"))
    home_script = base64.b64decode(mocks.created["blue-launch"].inputs["userData"]).decode()
    for region, place in (("us-east-1", US), ("ap-southeast-2", AP)):
        vpc, *subnets = place.split(":")[:3]
        provider = mocks.created[f"blue-aws-{region}"]
        assert provider.typ == "pulumi:providers:aws" and provider.inputs["region"] == region
        ref = f"::blue-aws-{region}::blue-aws-{region}-id"
        tg = mocks.created[f"blue-tg-{region}"]
        assert tg.provider.endswith(ref) and tg.inputs["vpcId"] == vpc, where(tg)
        assert tg.inputs["healthCheck"]["path"] == "/healthz/ready", where(tg)
        assert tg.inputs["port"] == 8080, where(tg)
        sg = mocks.created[f"blue-instances-{region}"]
        assert sg.provider.endswith(ref) and sg.inputs["vpcId"] == vpc, where(sg)
        assert sg.inputs["ingress"][0]["fromPort"] == 8080, where(sg)
        template = mocks.created[f"blue-launch-{region}"]
        assert template.provider.endswith(ref), where(template)
        # The same boot script: the same app, colour, version and port in every region.
        script = base64.b64decode(template.inputs["userData"]).decode()
        assert script == home_script and "--version=v7" in script, where(template)
        group = mocks.created[f"blue-group-{region}"]
        assert group.provider.endswith(ref), where(group)
        assert (group.inputs["desiredCapacity"], group.inputs["waitForElbCapacity"]) == (3, 3)
        assert group.inputs["vpcZoneIdentifiers"] == subnets, where(group)
        assert group.inputs["targetGroupArns"] == [tg_arn(f"blue-tg-{region}", region)]
        assert group.inputs["launchTemplate"]["id"] == f"blue-launch-{region}-id", where(group)
    # The VPC's address range is looked up in each region, through its provider.
    vpcs = {c.args["id"]: c.provider for c in mocks.calls if c.token == "aws:ec2/getVpc:getVpc"}
    assert vpcs["vpc-0aaa1111"].endswith("::blue-aws-us-east-1::blue-aws-us-east-1-id")
    assert not vpcs["vpc-0123abcd"], "the arm's own region looks its VPC up as before"
    # Only the arm's own region has the direct ALB the gate smoke-tests.
    assert not [n for n in mocks.created if n.startswith("blue-direct-") and n.count("-") > 3]
    assert outputs["targetGroupArns"] == {
        "eu-west-1": tg_arn("blue-tg", "eu-west-1"),
        "us-east-1": tg_arn("blue-tg-us-east-1", "us-east-1"),
        "ap-southeast-2": tg_arn("blue-tg-ap-southeast-2", "ap-southeast-2"),
    }
    assert outputs["targetGroupArn"] == tg_arn("blue-tg", "eu-west-1")


def test_a_region_without_its_own_ami_boots_a_copy_of_the_arms(mocks):
    run_arm(arm_of(armRegions=REGIONS))
    (copy,) = [a for a in mocks.created.values() if a.typ == "aws:ec2/amiCopy:AmiCopy"]
    assert copy.name == "blue-ami-us-east-1", where(copy)
    assert copy.inputs["sourceAmiId"] == "ami-0123abcd", where(copy)
    assert copy.inputs["sourceAmiRegion"] == "eu-west-1", where(copy)
    assert copy.provider.endswith("::blue-aws-us-east-1-id"), where(copy)
    assert mocks.created["blue-launch-us-east-1"].inputs["imageId"] == "blue-ami-us-east-1-id"
    # A region whose place names an AMI boots that one, with nothing copied there.
    assert mocks.created["blue-launch-ap-southeast-2"].inputs["imageId"] == "ami-0456cdef"
    assert mocks.created["blue-launch"].inputs["imageId"] == "ami-0123abcd"


def test_without_the_key_the_arm_declares_one_region_as_before(mocks):
    outputs = run_arm(arm_of())
    assert sorted(aws_resources(mocks)) == HOME_ONLY
    assert "targetGroupArns" not in outputs
    assert not [c for c in mocks.calls if c.token == "aws:index/getRegion:getRegion"]


def test_one_region_grows_into_several_without_touching_what_is_there(mocks):
    """Adding bluegreen:armRegions adds the other regions' resources and changes none of the arm's
    own, input for input, so its instances are not replaced."""
    run_arm(arm_of())
    single = dict(mocks.created)
    several = install(ArnMocks())
    run_arm(arm_of(armRegions=REGIONS))
    for name in HOME_ONLY:
        before, after = single[name], several.created[name]
        assert (after.typ, after.inputs, after.provider) == (
            before.typ,
            before.inputs,
            before.provider,
        ), name


# --- an edge in those regions, reading those arms ------------------------------------------------


def arm_stacks(regions: str) -> dict:
    """Both arms deployed in their own region and `regions`, as the edge reads their stacks."""
    stacks = {}
    for color, version in (("blue", "v1"), ("green", "v2")):
        install(ArnMocks())
        stacks[f"organization/bluegreen/{color}"] = run_arm(
            arm_of(color, version, armRegions=regions)
        )
    return stacks


def test_each_edge_site_forwards_to_the_arms_target_groups_in_its_own_region():
    stacks = arm_stacks(json.dumps({"us-east-1": US}))
    mocks = install(ArnMocks(stacks))
    edges = {"eu": "eu-west-1", "us": "us-east-1:vpc-0aaa1111:subnet-0ccc3333:subnet-0ddd4444"}
    live = settings("live", role="edge", activeColor="green", edges=json.dumps(edges))
    deploy(lambda: build_edge(live))
    assert weights_of(mocks.created["live-http"]) == [
        (tg_arn("blue-tg", "eu-west-1"), 0),
        (tg_arn("green-tg", "eu-west-1"), 100),
    ]
    us = mocks.created["live-http-us"]
    assert us.provider.endswith("::live-aws-us::live-aws-us-id"), where(us)
    assert weights_of(us) == [
        (tg_arn("blue-tg-us-east-1", "us-east-1"), 0),
        (tg_arn("green-tg-us-east-1", "us-east-1"), 100),
    ]


def test_an_edge_site_where_the_arms_do_not_run_names_the_key_that_would_put_them_there():
    from platforms.aws import alb_sites
    from platforms.base import ArmView

    stacks = arm_stacks(json.dumps({"us-east-1": US}))
    install(ArnMocks(stacks))
    edges = {"eu": "eu-west-1", "ap": "ap-southeast-2:" + ":".join(AP.split(":")[:3])}
    live = settings("live", role="edge", activeColor="blue", edges=json.dumps(edges))
    (ap,) = [s for s in alb_sites.sites(live.settings, live.platform.network) if s.name == "ap"]
    o = stacks["organization/bluegreen/blue"]
    blue = ArmView("blue", o["endpoint"], o["version"], o["nodes"], pulumi.Output.from_input(o))

    @pulumi.runtime.test
    def program():
        return alb_sites.target_groups({"blue": blue, "green": blue}, ap)["blue"]

    with pytest.raises(pulumi.RunError) as err:
        program()
    message = str(err.value)
    assert "The edge ap of bluegreen:edges is in ap-southeast-2" in message
    assert "bluegreen:armRegions" in message


# --- refused ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ({"us-east-x": US}, "'us-east-x' is not an AWS region"),
        ({"10.0.0.1": US}, "'10.0.0.1' is not an AWS region"),
        (
            {"us-east-1:vpc-0aaa1111": "subnet-0ccc3333:subnet-0ddd4444"},
            "'us-east-1:vpc-0aaa1111' is not an AWS region",
        ),
        (f'{{"us-east-1": "{US}", "us-east-1": "{US}"}}', "us-east-1 is listed twice"),
        ({"us-east-1": ""}, "us-east-1: the VPC and subnets of its instances there are missing"),
        ({"us-east-1": US.replace("vpc-0aaa1111", "vpc-mine")}, "'vpc-mine' is not a VPC id"),
        ({"us-east-1": US.replace("subnet-0ddd4444", "sn-1")}, "'sn-1' is not a subnet id"),
        (
            {"us-east-1": "vpc-0aaa1111:subnet-0ccc3333"},
            "us-east-1: its instances need at least two different subnets, in two zones",
        ),
        (
            {"us-east-1": "vpc-0aaa1111:subnet-0ccc3333:subnet-0ccc3333"},
            "us-east-1: its instances need at least two different subnets",
        ),
        ({"us-east-1": US + ":ami-mine"}, "us-east-1: 'ami-mine' is not an AMI id"),
        ('["us-east-1"]', "it is not a JSON object of region to place"),
        ('{"us-east-1": ["vpc-0aaa1111"]}', "it is not a JSON object of region to place"),
    ],
)
def test_a_bad_region_is_refused_before_anything_is_declared(mocks, value, why):
    given = value if isinstance(value, str) else json.dumps(value)
    with pytest.raises(ConfigError) as err:
        deploy(lambda: build_arm(arm_of(armRegions=given)))
    (problem,) = [p for p in err.value.problems if p.startswith("bluegreen:armRegions ")]
    assert problem.startswith("bluegreen:armRegions must be a JSON object of each AWS region")
    assert f"got {given}: " in problem and why in problem, problem
    assert problem.endswith("(nothing was changed)")
    assert mocks.created == {}, f"refused config, yet {list(mocks.created)} were declared"


def test_the_arms_own_region_listed_again_is_refused(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    arm_of(armRegions=json.dumps({"ap-southeast-2": AP})).preflight()  # another region: fine
    with pytest.raises(ConfigError) as err:
        arm_of(armRegions=REGIONS).preflight()
    (problem,) = err.value.problems
    assert problem.startswith("bluegreen:armRegions must be a JSON object of each AWS region")
    assert f"got {REGIONS}: us-east-1 is the arm's own region (aws:region)" in problem
    assert problem.endswith("(nothing was changed)")


def test_the_own_region_is_refused_too_when_only_the_provider_knows_it(monkeypatch):
    """With the region in a profile, the preflight cannot tell; the default provider's region
    (eu-west-1 under these mocks) fails the preview instead, before the region's provider."""
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    loaded = arm_of(armRegions=json.dumps({"eu-west-1": US}))
    loaded.preflight()
    mocks = install(ArnMocks())
    own = "bluegreen:armRegions lists eu-west-1, the arm's own region"
    with pytest.raises(pulumi.RunError, match=own):
        run_arm(loaded)
    assert not [n for n in mocks.created if n.endswith("-eu-west-1")], "a second copy was declared"
