"""An aws arm in more regions than its own (bluegreen:armRegions), so that an edge's ALB in each
of them (bluegreen:edges) has the arm's target group in its own VPC to forward to: an ALB forwards
to no other. Each region gets, through a provider of its own, what the arm's own region has but
its direct ALB; the stack exports every region's target group as `targetGroupArns`.

A region's place is written as a later site of bluegreen:edges is, without the region in front
(aws_places.py parses both), and may end with the AMI to boot there: AMI ids are per region.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from bluegreen.config import ConfigError
from bluegreen.reader import NAMESPACE, Reader
from platforms.aws.aws_places import REGION, parse_place
from platforms.aws.vpc import Network

KEY = "armRegions"
_AMI = re.compile(r"ami-[0-9a-f]{8,17}")
ALLOWED = (
    "a JSON object of each AWS region the arm runs in besides its own (aws:region, whose "
    "instances keep bluegreen:vpcId and bluegreen:subnetIds), each region once, to the VPC and at "
    "least two subnets (two zones) of its instances there, and optionally the AMI to boot there "
    "(else bluegreen:ami is copied there), such as "
    '{"us-east-1": "vpc-0aaa1111:subnet-0ccc3333:subnet-0ddd4444"} or '
    '{"us-east-1": "vpc-0aaa1111:subnet-0ccc3333:subnet-0ddd4444:ami-0456cdef"}'
)
_TWO = "its instances need at least two different subnets, in two zones"


@dataclass(frozen=True)
class ArmRegion:
    """One more region of the arm, as bluegreen:armRegions gives it."""

    region: str
    place: str
    """The value as given, for messages."""
    network: Network
    ami: str | None
    """The AMI to boot there; None: bluegreen:ami, copied there (aws.ec2.AmiCopy)."""


@dataclass(frozen=True)
class Placed:
    """Where one copy of the arm's compute runs: its network, image and provider (None: the
    stack's), and what its resources' names end with ("" in the arm's own region)."""

    network: Network
    ami: pulumi.Input[str]
    provider: pulumi.ProviderResource | None = None
    suffix: str = ""


class _Pairs(list):
    """A JSON object's pairs in order, so that a region given twice is seen, not dropped."""


def _place(region: str, place: str) -> tuple[ArmRegion | None, str | None]:
    if not REGION.fullmatch(region):  # before the parser, which would split a key with a ":"
        return None, f"{region!r} is not an AWS region"
    parts = place.split(":") if place else []
    ami = parts.pop() if parts and parts[-1].startswith("ami-") else None
    if ami is not None and not _AMI.fullmatch(ami):
        return None, f"{region}: {ami!r} is not an AMI id (ami-0123abcd)"
    _, network, why = parse_place(":".join([region, *parts]), _TWO)
    if why:
        return None, f"{region}: {why}"
    if network is None:
        return None, f"{region}: the VPC and subnets of its instances there are missing"
    return ArmRegion(region, place, network, ami), None


def read(r: Reader) -> tuple[ArmRegion, ...]:
    """The arm's other regions, in the order given; () when the key is unset. What is wrong is
    one problem of `r`, reported with the others before anything is declared."""
    raw = r.optional(KEY)
    if raw is None:
        return ()
    try:
        pairs = json.loads(raw, object_pairs_hook=_Pairs)
    except ValueError:
        pairs = None
    whys: list[str] = []
    found: list[ArmRegion] = []
    if not isinstance(pairs, _Pairs) or not all(isinstance(v, str) for _, v in pairs):
        whys.append("it is not a JSON object of region to place")
        pairs = _Pairs()
    seen: set[str] = set()
    for region, place in pairs:
        if region in seen:
            whys.append(f"{region} is listed twice")
            continue
        seen.add(region)
        one, why = _place(region, place)
        if why:
            whys.append(why)
        elif one:
            found.append(one)
    if whys:
        r.problems.append(
            f"{NAMESPACE}:{KEY} must be {ALLOWED}, got {raw}: {'; '.join(whys)} "
            "(nothing was changed)"
        )
        return ()
    return tuple(found)


def refuse_home(regions: tuple[ArmRegion, ...], home: str | None) -> None:
    """The arm's own region keeps its own resources and names; listing it again would declare a
    second copy there. Unknown here (only a profile knows it), `provider` refuses it instead."""
    listed = [x for x in regions if x.region == home]
    if listed:
        given = json.dumps({x.region: x.place for x in regions})
        raise ConfigError(
            [
                f"{NAMESPACE}:{KEY} must be {ALLOWED}, got {given}: {home} is the arm's own "
                "region (aws:region), which bluegreen:vpcId and bluegreen:subnetIds place: take "
                "it out (nothing was changed)"
            ]
        )


def provider(
    name: str, parent: pulumi.Resource, region: str, home: pulumi.Output[str]
) -> aws.Provider:
    """A region's provider. It takes none of the stack's aws: config but what is passed here; the
    credentials come from the environment, or the profile the stack names. Its region waits for
    the arm's own (`home`, the default provider's), so that when only a profile knows that one,
    listing it again fails the preview before anything is declared in it."""

    def other(own: str) -> str:
        if own == region:
            raise pulumi.RunError(
                f"{NAMESPACE}:{KEY} lists {region}, the arm's own region (its provider's), which "
                "bluegreen:vpcId and bluegreen:subnetIds place: take it out (nothing was changed)"
            )
        return region

    return aws.Provider(
        f"{name}-aws-{region}",
        region=home.apply(other),
        profile=pulumi.Config("aws").get("profile"),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def image(
    name: str,
    parent: pulumi.Resource,
    where: ArmRegion,
    ami: str,
    home: pulumi.Input[str],
    provider: aws.Provider,
    tags: dict[str, str],
) -> pulumi.Input[str]:
    """The AMI the region's instances boot: the one its place names, else the arm's own copied
    there from the arm's region (AWS takes minutes per GB, once per AMI)."""
    if where.ami:
        return where.ami
    copy = aws.ec2.AmiCopy(
        f"{name}-ami-{where.region}",
        source_ami_id=ami,
        source_ami_region=home,
        description=f"{ami} copied for bluegreen",
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, provider=provider),
    )
    return copy.id


def by_region(
    home: pulumi.Output[str], own: pulumi.Output[str], arns: dict[str, pulumi.Output[str]]
) -> pulumi.Output[dict[str, str]]:
    """`targetGroupArns`: every region's target group, the arm's own region's included, which is
    where the edge's ALB in each region finds the one it forwards to (alb_sites.py)."""
    return pulumi.Output.all(home, own, *arns.values()).apply(
        lambda v: {v[0]: v[1], **dict(zip(arns, v[2:], strict=True))}
    )
