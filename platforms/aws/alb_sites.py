"""The sites of the aws edge (bluegreen:edges): each an ALB of its own, in an AWS region of its
own, all behind the live name with Route 53 latency routing and a health check each
(platforms/dns.py). What is wrong with a place is refused before anything is declared; what a
site a flip in waves does not move yet serves is read from this stack's own last `edges` output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from bluegreen.config import COLORS, ConfigError, EdgeSettings
from platforms.aws.alb_switch import arm_output
from platforms.aws.aws_places import REGION as REGION  # where it was before aws_places.py
from platforms.aws.aws_places import parse_place as _parse
from platforms.aws.vpc import Network
from platforms.base import Arms, ArmView

PLACES_ALLOWED = (
    "an AWS region for each site on the aws platform, such as eu-west-1, us-east-1 or "
    "ap-southeast-2, each region once: the first site in the stack's own region (its ALB keeps "
    "bluegreen:vpcId and bluegreen:subnetIds), every other followed by the VPC and at least two "
    "subnets of its ALB in that region, such as "
    '{"eu": "eu-west-1", "us": "us-east-1:vpc-0123abcd:subnet-0aaa1111:subnet-0bbb2222"}'
)


@dataclass(frozen=True)
class AlbSite:
    """One ALB of the aws edge: a site of bluegreen:edges, or the single default edge."""

    name: str
    """The site's name; "" for the single edge of a stack without bluegreen:edges."""
    region: str | None
    """Its AWS region; None for the single edge, which is in the stack's (the default
    provider's)."""
    network: Network
    first: bool = True

    def named(self, base: str) -> str:
        """A resource's name: the first site keeps the single edge's, so a stack with one edge
        grows into several without replacing anything."""
        return base if self.first else f"{base}-{self.name}"


def refusals(s: EdgeSettings) -> list[str]:
    """What is wrong with the places of bluegreen:edges on aws, as one problem."""
    if not s.sites.several:
        return []
    whys: list[str] = []
    seen: dict[str, str] = {}
    for i, site in enumerate(s.sites.sites):
        region, network, why = _parse(site.place)
        if why:
            whys.append(f"{site.name}: {why}")
            continue
        if region in seen:
            whys.append(f"{site.name}: {region} is already {seen[region]}'s region")
        seen.setdefault(region, site.name)
        if i and network is None:
            whys.append(f"{site.name}: the VPC and subnets of its ALB in {region} are missing")
    if not whys:
        return []
    given = json.dumps({site.name: site.place for site in s.sites.sites})
    return [
        f"bluegreen:edges must give {PLACES_ALLOWED}, got {given}: {'; '.join(whys)} "
        "(nothing was changed)"
    ]


def sites(s: EdgeSettings, network: Network) -> list[AlbSite]:
    """Each ALB of the edge, in the order of bluegreen:edges (refused already if wrong)."""
    if not s.sites.several:
        return [AlbSite("", None, network)]
    found = []
    for i, site in enumerate(s.sites.sites):
        region, own, _ = _parse(site.place)
        found.append(AlbSite(site.name, region, own or network, first=i == 0))
    return found


def refuse_first_elsewhere(s: EdgeSettings, stack_region: str | None) -> None:
    """The first site keeps the single edge's ALB and the default provider, so it must be in the
    stack's region (aws:region, else AWS_REGION); unknown, the arms' target groups tell."""
    if not s.sites.several or not stack_region:
        return
    first = s.sites.sites[0]
    region = _parse(first.place)[0]
    if region != stack_region:
        raise ConfigError(
            [
                f"bluegreen:edges lists {first.name} first, in {region}, but the stack's region "
                f"(aws:region) is {stack_region}: the first site keeps the stack's ALB and its "
                f"provider, so list first the site in {stack_region}, or add one there "
                "(nothing was changed)"
            ]
        )


def arn_region(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 else ""


def target_groups(arms: Arms, site: AlbSite) -> dict[str, pulumi.Output[str]]:
    """Each arm's target group that `site`'s listener forwards to. An ALB forwards only to target
    groups in its own VPC: a site needs the arm's target group in its region, the arm stack's
    `targetGroupArn`, or for another region its `targetGroupArns` ({region: ARN})."""
    if site.region is None:
        return {c: arm_output(arms[c], "targetGroupArn") for c in COLORS}
    return {c: _in_region(arms[c], site) for c in COLORS}


def _in_region(arm: ArmView, site: AlbSite) -> pulumi.Output[str]:
    region = site.region

    def pick(outputs: dict) -> str:
        own = outputs.get("targetGroupArn")
        if own and arn_region(own) == region:
            return own
        others = outputs.get("targetGroupArns")
        if isinstance(others, Mapping) and others.get(region):
            return others[region]
        raise pulumi.RunError(
            f"The edge {site.name} of bluegreen:edges is in {region}, but the {arm.color} arm "
            f"has no target group there (its targetGroupArn is in {arn_region(own or '') or '?'}"
            "): an ALB forwards only to target groups in its own VPC, so the arm's instances "
            f"must run in {region} too, its stack exporting their target group as "
            f'targetGroupArns {{"{region}": "arn:aws:elasticloadbalancing:{region}:..."}}. '
            f"The aws arm runs there with bluegreen:armRegions on its stack: add {region} to the "
            f"{arm.color} arm's and update it first, or take {site.name} out of bluegreen:edges."
        )

    return arm.outputs.apply(pick)
