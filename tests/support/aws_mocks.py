"""The aws platform as the Pulumi mocks answer it (tests/unit/test_aws*.py): the arms' stacks,
what AWS computes on create, and each ALB in its provider's region."""

from __future__ import annotations

import pulumi

from tests.support.mocks import StackMocks, stack

LIVE = "organization/bluegreen/live"
VPC = {"vpcId": "vpc-0123abcd", "subnetIds": '["subnet-0aaa1111", "subnet-0bbb2222"]'}
TG_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/{}/0123456789abcdef"


def arm_outputs(color: str, version: str) -> dict:
    dns = f"{color}-direct-123.eu-west-1.elb.amazonaws.com"
    return {
        "color": color,
        "version": version,
        "endpoint": f"http://{dns}",
        "nodes": [f"{dns}:80"],
        "targetGroupArn": TG_ARN.format(color),
        "albDnsName": dns,
        "albZoneId": "Z32O12XQLNTSW2",
    }


STACKS = {
    "organization/bluegreen/blue": arm_outputs("blue", "v1"),
    "organization/bluegreen/green": arm_outputs("green", "v2"),
}


class Mocks(StackMocks):
    def state(self, args: pulumi.runtime.MockResourceArgs) -> dict:
        state = dict(args.inputs)
        # What AWS computes on create: ARNs, the ALB's DNS name and hosted zone.
        if args.typ.startswith("aws:lb/"):
            state["arn"] = f"arn:aws:elasticloadbalancing:::{args.name}"
        if args.typ == "aws:lb/loadBalancer:LoadBalancer":
            state["dnsName"] = f"{args.name}-123.eu-west-1.elb.amazonaws.com"
            state["zoneId"] = "Z32O12XQLNTSW2"
            state["arnSuffix"] = f"app/{args.name}/50dc6c495c0c9188"
        if args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
            state["latestVersion"] = 1
        return state

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:ec2/getVpc:getVpc":
            return {"id": args.args["id"], "cidrBlock": "10.0.0.0/16"}
        if args.token == "aws:index/getRegion:getRegion":  # the provider's region
            return {"id": "eu-west-1", "name": "eu-west-1", "region": "eu-west-1"}
        return {}


def settings(name: str, **values):
    return stack(name, **{"platform": "aws", **VPC, **values})


def forward_of(listener: pulumi.runtime.MockResourceArgs) -> dict:
    (action,) = listener.inputs["defaultActions"]
    assert action["type"] == "forward"
    return action["forward"]


class RegionMocks(Mocks):
    """Test_aws's mocks, with each ALB's DNS name in its provider's region, and this stack's own
    last outputs (`before`) for a flip in waves."""

    def __init__(self, stacks: dict, before: dict | None = None) -> None:
        super().__init__(stacks)
        self.before = before
        self.read: list[str] = []
        self.regions: dict[str, str] = {}

    def state(self, args: pulumi.runtime.MockResourceArgs) -> dict:
        state = super().state(args)
        if args.typ == "pulumi:providers:aws":
            self.regions[f"{args.name}-id"] = args.inputs["region"]
        if args.typ == "aws:lb/loadBalancer:LoadBalancer":
            region = self.regions.get(args.provider.rsplit("::", 1)[-1], "eu-west-1")
            state["dnsName"] = f"{args.name}-123.{region}.elb.amazonaws.com"
        return state

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "pulumi:pulumi:readStackOutputs":
            self.read.append(args.args["name"])
            if args.args["name"] == LIVE and self.before is not None:
                return {"name": LIVE, "outputs": self.before}
        return super().call(args)


def weights_of(listener) -> list[tuple[str, int]]:
    return [(tg["arn"], tg["weight"]) for tg in forward_of(listener)["targetGroups"]]
