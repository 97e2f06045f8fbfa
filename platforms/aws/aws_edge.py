"""The live edge on AWS: an ALB whose listener is the traffic switch (alb_switch.py), confirmed
through the ALB after each change, and read by the hold in CloudWatch (alb_metrics.py). What an
ALB cannot do is refused before anything is declared (`AwsEdge.refusals`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi

from bluegreen.config import COLORS, EdgeSettings
from bluegreen.reader import Reader
from bluegreen.switch import generation
from platforms import metrics_keys
from platforms.aws.alb_metrics import cloudwatch_source
from platforms.aws.alb_switch import arm_output, forward_action, live_listener, maintenance_rule
from platforms.aws.vpc import Network, load_balancer, tags_of
from platforms.base import Arms, EdgeEndpoint, EdgePlatform, refused, write_refusals
from platforms.confirm import TrafficConfirmation


@dataclass(frozen=True)
class AwsEdge(EdgePlatform):
    network: Network
    certificate_arn: str | None
    """Serve HTTPS with this ACM certificate; plain HTTP when None."""
    stickiness_seconds: int
    """Keep a client on one target group for this long during canary steps (0: off)."""

    @classmethod
    def from_config(cls, read: Reader) -> AwsEdge:
        arn = read.optional("certificateArn")
        if arn is not None and not arn.startswith("arn:aws"):
            read.problem("certificateArn", arn, "an ACM certificate ARN (arn:aws:acm:...)")
        # The hold reads the ALB's own metrics in CloudWatch (cutover/sources/cloudwatch.py).
        metrics_keys.source(read, "aws", ("cloudwatch",))
        return cls(
            network=Network.from_config(read),
            certificate_arn=arn,
            stickiness_seconds=read.integer("stickinessSeconds", 0, 604800),
        )

    def refusals(self, settings: EdgeSettings) -> list[str]:
        """What an ALB cannot do: cache, mirror requests, or limit the request rate or the
        connections. Only values other than the defaults are refused."""
        alb = "the aws edge (an ALB)"
        only = "the only value on aws"
        found = []
        cache = settings.cache
        if cache.enabled:
            found.append(
                refused(
                    "cache",
                    True,
                    f"{alb} has no cache",
                    f"set it to false, {only}, and put CloudFront in front of the ALB if you "
                    "need an edge cache",
                )
            )
            if cache.warm_paths:  # without the cache, config.py already refuses them
                found.append(
                    refused(
                        "cacheWarmPaths",
                        cache.warm_paths,
                        f"{alb} has no cache to warm",
                        f"leave it unset, {only}",
                    )
                )
        if settings.shadow.percent > 0:
            found.append(
                refused(
                    "shadow",
                    settings.shadow.percent,
                    f"{alb} has no request mirroring, so it cannot copy live requests to the "
                    "idle arm",
                    f"set it to 0, {only}",
                )
            )
        found.extend(write_refusals(settings, alb, only))
        waf = "an AWS WAF rate-based rule on the ALB is the AWS way, outside bluegreen"
        b = settings.backpressure
        if b.rate > 0:
            found.append(
                refused(
                    "rateLimit",
                    b.rate,
                    f"{alb} has no request-rate limit",
                    f"set it to 0, {only}; {waf}",
                )
            )
        if b.connections > 0:
            found.append(
                refused(
                    "connectionLimit",
                    b.connections,
                    f"{alb} has no connection cap",
                    f"set it to 0, {only}; {waf}",
                )
            )
        return found

    def edge(
        self, name: str, parent: pulumi.Resource, settings: EdgeSettings, arms: Arms
    ) -> EdgeEndpoint:
        https = self.certificate_arn is not None
        what = f"bluegreen {settings.app_name} live ALB: HTTP and HTTPS"
        alb = load_balancer(f"{name}-alb", parent, self.network, what, (80, 443), tags_of(settings))
        target_groups = {c: arm_output(arms[c], "targetGroupArn") for c in COLORS}
        # bluegreen:stickyCanary alone keeps clients for a day, as the nginx edges' cookie does.
        sticky_s = self.stickiness_seconds or (86400 if settings.sticky else 0)
        weights = settings.weights
        switch = forward_action(target_groups, weights, sticky_s)
        listener = live_listener(name, parent, alb, switch, self.certificate_arn)
        m = settings.maintenance
        if m.enabled:
            maintenance_rule(name, parent, listener, m)

        fingerprint = generation(
            json.dumps(
                {
                    "weights": weights,
                    "stickiness": sticky_s,
                    "maintenance": [m.enabled, m.status, m.retry_after_s],
                    "https": https,
                },
                sort_keys=True,
            )
        )
        scheme = "https" if https else "http"
        url = pulumi.Output.all(alb.dns_name, listener.arn).apply(lambda v: f"{scheme}://{v[0]}/")
        weighted = [c for c, w in weights.items() if w > 0]
        confirm = TrafficConfirmation(
            f"{name}-confirm",
            {
                "url": url,
                "color": weighted[0] if len(weighted) == 1 else None,
                "fingerprint": fingerprint,
                "timeout": max(settings.flip_timeout_s, 60),  # ALB changes take a while
            },
            pulumi.ResourceOptions(parent=parent, depends_on=[listener]),
        )
        return EdgeEndpoint(
            url=url,
            generation=listener.arn.apply(lambda _: fingerprint),
            exports={
                "albDnsName": alb.dns_name,
                "albZoneId": alb.zone_id,
                "confirmedAfterSeconds": confirm.confirmedAfterSeconds,
            },
            metrics=cloudwatch_source(alb, target_groups),
        )
