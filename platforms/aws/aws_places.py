"""Where on AWS something runs, as bluegreen:edges and bluegreen:armRegions write it: a region,
then the VPC and at least two subnets there, `us-east-1:vpc-0123abcd:subnet-0aaa1111:subnet-...`.
One parser for both keys, so an edge's site and an arm's region are written and checked alike."""

from __future__ import annotations

import os
import re

import pulumi

from platforms.aws.vpc import Network

REGION = re.compile(
    r"[a-z]{2,4}(-gov|-iso[a-z]?)?-"
    r"(central|north|south|east|west|northeast|northwest|southeast|southwest)-[1-9][0-9]?"
)
_VPC = re.compile(r"vpc-[0-9a-f]{8,17}")
_SUBNET = re.compile(r"subnet-[0-9a-f]{8,17}")
TWO_SUBNETS = "an ALB needs at least two different subnets, in two zones"


def parse_place(place: str, two: str = TWO_SUBNETS) -> tuple[str, Network | None, str | None]:
    """A place's region and network (None: the stack's), and what is wrong with it if anything;
    `two` says why fewer than two subnets are refused."""
    region, *rest = place.split(":")
    if not REGION.fullmatch(region):
        return region, None, f"{region!r} is not an AWS region"
    if not rest:
        return region, None, None
    vpc, *subnets = rest
    if not _VPC.fullmatch(vpc):
        return region, None, f"{vpc!r} is not a VPC id (vpc-0123abcd)"
    bad = [x for x in subnets if not _SUBNET.fullmatch(x)]
    if bad:
        return region, None, f"{bad[0]!r} is not a subnet id (subnet-0aaa1111)"
    if len(set(subnets)) != len(subnets) or len(subnets) < 2:
        return region, None, two
    return region, Network(vpc, tuple(subnets)), None


def stack_region() -> str | None:
    """The region of the stack's default provider as far as the config tells (aws:region, else
    AWS_REGION or AWS_DEFAULT_REGION); None when only a profile or the instance knows it."""
    return (
        pulumi.Config("aws").get("region")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
    )
