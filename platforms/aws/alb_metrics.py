"""The hold's source on AWS: CloudWatch's metrics of the live ALB per arm target group
(cutover/sources/cloudwatch.py reads them)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def arn_suffix(arn: str) -> str:
    """What CloudWatch's ALB dimensions name a target group or load balancer by: its ARN after
    the account, e.g. targetgroup/blue-tg/0123456789abcdef."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith(("targetgroup/", "app/")):
        raise pulumi.RunError(f"{arn!r} is not the ARN of an ALB or of its target group")
    return parts[5]


def cloudwatch_source(
    alb: aws.lb.LoadBalancer,
    target_groups: dict[str, pulumi.Output[str]],
    region: pulumi.Input[str] | None = None,
) -> pulumi.Output[dict]:
    """The hold's source: CloudWatch's metrics of this ALB per arm target group, in the
    region the ALB is in (`region`, else the default provider's)."""
    colors = list(target_groups)
    if region is None:
        region = aws.get_region_output().region
    return pulumi.Output.all(region, alb.arn_suffix, *[target_groups[c] for c in colors]).apply(
        lambda v: {
            "source": "cloudwatch",
            "region": v[0],
            "loadBalancer": v[1],
            "targetGroups": {c: arn_suffix(a) for c, a in zip(colors, v[2:], strict=True)},
        }
    )


def with_sites(first: pulumi.Output[dict], sites: dict[str, pulumi.Output[dict]]) -> pulumi.Output:
    """Several edges (bluegreen:edges): the first site's source as before, and under `sites`
    each site's own region, ALB and target groups, so the hold can read a wave's edges."""
    names = list(sites)

    def merge(values: list[dict]) -> dict:
        per_site = zip(names, values[1:], strict=True)
        return {
            **values[0],
            "sites": {n: {k: v for k, v in m.items() if k != "source"} for n, m in per_site},
        }

    return pulumi.Output.all(first, *[sites[n] for n in names]).apply(merge)
