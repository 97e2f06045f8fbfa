"""Where the arms' instances and the ALBs live, for both roles: the VPC and its subnets (read from
the config), their security groups, the load balancers, and the tags on everything."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from bluegreen.config import Common
from bluegreen.reader import Reader

_ANYWHERE = {"cidr_blocks": ["0.0.0.0/0"], "ipv6_cidr_blocks": ["::/0"]}
_AWS_ID = re.compile(r"[a-z]+-[0-9a-f]{8,17}")


def aws_id(read: Reader, key: str, why: str, example: str) -> str:
    value = read.required(key, f": the aws platform needs {why}")
    if value and not _AWS_ID.fullmatch(value):
        read.problems.append(f'bluegreen:{key} must look like {example}, got "{value}"')
    return value


@dataclass(frozen=True)
class Network:
    """Where the ALBs and the arms' instances live; both roles need it."""

    vpc_id: str
    subnet_ids: tuple[str, ...]

    @classmethod
    def from_config(cls, read: Reader) -> Network:
        vpc = aws_id(read, "vpcId", "the VPC id (vpc-...)", "vpc-0123abcd")
        subnets = read.strings("subnetIds")
        if len(subnets) < 2:
            read.problems.append(
                "bluegreen:subnetIds must list at least two subnets in different zones "
                f"(an ALB needs two), got {list(subnets)}"
            )
        return cls(vpc_id=vpc, subnet_ids=subnets)


def security_group(
    name: str,
    parent: pulumi.Resource,
    vpc_id: str,
    description: str,
    ingress: list[aws.ec2.SecurityGroupIngressArgs],
    provider: pulumi.ProviderResource | None = None,
) -> aws.ec2.SecurityGroup:
    return aws.ec2.SecurityGroup(
        name,
        vpc_id=vpc_id,
        description=description,
        ingress=ingress,
        # The provider removes AWS's default allow-all egress rule, so state it: load balancers
        # must reach their targets and instances must reach package mirrors.
        egress=[
            aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0, **_ANYWHERE)
        ],
        opts=pulumi.ResourceOptions(parent=parent, provider=provider),
    )


def http_in(*ports: int) -> list[aws.ec2.SecurityGroupIngressArgs]:
    return [
        aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=p, to_port=p, **_ANYWHERE)
        for p in ports
    ]


def load_balancer(
    name: str,
    parent: pulumi.Resource,
    network: Network,
    what: str,
    ports: tuple[int, ...],
    tags,
    provider: pulumi.ProviderResource | None = None,
) -> aws.lb.LoadBalancer:
    """An application load balancer open to the world on `ports`, in `provider`'s region (None:
    the stack's)."""
    sg = security_group(f"{name}-sg", parent, network.vpc_id, what, http_in(*ports), provider)
    return aws.lb.LoadBalancer(
        name,
        load_balancer_type="application",
        subnets=list(network.subnet_ids),
        security_groups=[sg.id],
        drop_invalid_header_fields=True,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, provider=provider),
    )


def tags_of(s: Common, *arm: str) -> dict[str, str]:
    """The app and the stack, and an arm's colour and version."""
    tags = {"bluegreen:app": s.app_name, "bluegreen:stack": s.stack}
    return tags | dict(zip(("bluegreen:color", "bluegreen:version"), arm, strict=False))
