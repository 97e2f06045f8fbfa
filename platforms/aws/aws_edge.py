"""The live edge on AWS: an ALB whose listener is the traffic switch (alb_switch.py), confirmed
through the ALB after each change, and read by the hold in CloudWatch (alb_metrics.py). What an
ALB cannot do is refused before anything is declared (`AwsEdge.refusals`). With several edges
(bluegreen:edges) one ALB per site, each in its region (alb_sites.py)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from bluegreen.config import EdgeSettings
from bluegreen.reader import Reader
from bluegreen.switch import generation
from platforms import dns, metrics_keys
from platforms.aws import alb_sites
from platforms.aws.alb_metrics import cloudwatch_source, with_sites
from platforms.aws.alb_switch import forward_action, live_listener, maintenance_rule
from platforms.aws.vpc import Network, load_balancer, tags_of
from platforms.base import Arms, EdgeEndpoint, EdgePlatform, refused, write_refusals
from platforms.confirm import TrafficConfirmation
from platforms.held_sites import site_traffic


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
        found.extend(alb_sites.refusals(settings))
        d = settings.dns
        if settings.sites.several and d and d.provider == "rfc2136" and not d.switch:
            found.append(
                refused(
                    "dnsProvider",
                    d.provider,
                    "the live name cannot be one CNAME to the several ALBs of bluegreen:edges",
                    'set it to "route53", whose latency records with a health check per edge '
                    'route each user to a healthy ALB, or "none"',
                )
            )
        return found

    def preflight(self, s: EdgeSettings) -> None:
        configured = pulumi.Config("aws").get("region")
        stack_region = (
            configured or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        )
        alb_sites.refuse_first_elsewhere(s, stack_region)

    def latency_sites(self, s: EdgeSettings) -> list[dns.LatencySite] | None:
        """Several edges: the live name's Route 53 records route by latency to each site's ALB,
        in site order (EdgeEndpoint.hosts), each withdrawn when its health check fails."""
        if not s.sites.several:
            return None
        https = self.certificate_arn is not None
        return [
            dns.LatencySite(site.name, site.region or "", https)
            for site in alb_sites.sites(s, self.network)
        ]

    def edge(
        self, name: str, parent: pulumi.Resource, settings: EdgeSettings, arms: Arms
    ) -> EdgeEndpoint:
        sites = alb_sites.sites(settings, self.network)
        traffic = site_traffic(settings, [site.name for site in sites], os.environ)
        served = [
            self.site(name, parent, settings, arms, site, traffic[site.name]) for site in sites
        ]
        first = served[0]
        exports: dict[str, pulumi.Output] = {
            "albDnsName": first.alb.dns_name,
            "albZoneId": first.alb.zone_id,
            "confirmedAfterSeconds": first.confirmed_after,
        }
        metrics = cloudwatch_source(first.alb, first.target_groups)
        served_generation = first.generation
        if settings.sites.several:
            # What each site serves once its listener has it: during a flip in waves the sites
            # of the waves not moved yet keep the weights they had (platforms/held_sites.py).
            exports["edges"] = {
                sv.site.name: pulumi.Output.all(sv.url, sv.generation).apply(
                    lambda v, sv=sv: {
                        "url": v[0],
                        "region": sv.site.region,
                        "activeColor": sv.traffic[0],
                        "weights": sv.traffic[1],
                    }
                )
                for sv in served
            }
            metrics = with_sites(
                metrics,
                {
                    sv.site.name: cloudwatch_source(sv.alb, sv.target_groups, sv.site.region)
                    for sv in served
                },
            )
            served_generation = pulumi.Output.all(*[sv.generation for sv in served]).apply(
                lambda gens: ",".join(str(g) for g in gens)
            )
        return EdgeEndpoint(
            url=first.url,
            generation=served_generation,
            exports=exports,
            metrics=metrics,
            hosts=[sv.alb.dns_name for sv in served] if settings.sites.several else None,
        )

    def site(
        self,
        name: str,
        parent: pulumi.Resource,
        settings: EdgeSettings,
        arms: Arms,
        site: alb_sites.AlbSite,
        traffic: tuple[str, dict[str, int]],
    ) -> ServedSite:
        """One site's ALB, listener and confirmation, in its region: every site gets the same
        serving state from the same update, but for the weights of a site a flip in waves has
        not moved yet (`traffic`)."""
        provider = None
        if not site.first:
            # An explicit provider takes none of the stack's aws: config but what is passed here;
            # the credentials come from the environment, or the profile the stack names.
            provider = aws.Provider(
                f"{name}-aws-{site.name}",
                region=site.region,
                profile=pulumi.Config("aws").get("profile"),
                opts=pulumi.ResourceOptions(parent=parent),
            )
        https = self.certificate_arn is not None
        what = f"bluegreen {settings.app_name} live ALB: HTTP and HTTPS"
        alb = load_balancer(
            site.named(f"{name}-alb"),
            parent,
            site.network,
            what,
            (80, 443),
            tags_of(settings),
            provider,
        )
        target_groups = alb_sites.target_groups(arms, site)
        # bluegreen:stickyCanary alone keeps clients for a day, as the nginx edges' cookie does.
        sticky_s = self.stickiness_seconds or (86400 if settings.sticky else 0)
        weights = traffic[1]
        switch = forward_action(target_groups, weights, sticky_s)
        suffix = site.named("")
        listener = live_listener(name, parent, alb, switch, self.certificate_arn, provider, suffix)
        m = settings.maintenance
        if m.enabled:
            maintenance_rule(name, parent, listener, m, provider, suffix)

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
            site.named(f"{name}-confirm"),
            {
                "url": url,
                "color": weighted[0] if len(weighted) == 1 else None,
                "fingerprint": fingerprint,
                "timeout": max(settings.flip_timeout_s, 60),  # ALB changes take a while
            },
            pulumi.ResourceOptions(parent=parent, depends_on=[listener]),
        )
        return ServedSite(
            site=site,
            traffic=traffic,
            alb=alb,
            target_groups=target_groups,
            url=url,
            generation=listener.arn.apply(lambda _: fingerprint),
            confirmed_after=confirm.confirmedAfterSeconds,
        )


@dataclass(frozen=True)
class ServedSite:
    """What one site's declarations give the edge's exports."""

    site: alb_sites.AlbSite
    traffic: tuple[str, dict[str, int]]
    alb: aws.lb.LoadBalancer
    target_groups: dict[str, pulumi.Output[str]]
    url: pulumi.Output[str]
    generation: pulumi.Output[str]
    confirmed_after: pulumi.Output
