"""DNS behind one interface: Route 53, or RFC 2136 dynamic updates (BIND, Knot, PowerDNS).

The edge declares three names with short TTLs: `<app>.<zone>` (the live name), `blue.<zone>` and
`green.<zone>` (each arm's direct name). Normally the live name points at the edge; with
`bluegreen:dnsSwitch` it points at the active arm itself, the DNS switch for setups without a load
balancer, and then changing `activeColor` re-points it. Either way the TTL is the one declared.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from bluegreen.config import COLORS, Dns, EdgeSettings
from bluegreen.config_parts.edge_sites import health_checked
from bluegreen.rfc2136 import lookup
from bluegreen.rfc2136 import update as _update
from platforms.base import EdgePlatform


@dataclass(frozen=True)
class Names:
    live: str
    arms: dict[str, str]


def names(app_name: str, zone: str) -> Names:
    return Names(live=f"{app_name}.{zone}", arms={c: f"{c}.{zone}" for c in COLORS})


def record_type(values: list[str]) -> str:
    """A for addresses; CNAME for a host name (an ALB, say): a CNAME keeps the short TTL, where a
    Route 53 alias to an ALB would be served with the ALB's own 60 s."""
    try:
        for value in values:
            ipaddress.ip_address(value)
        return "A"
    except ValueError:
        if len(values) != 1:
            raise ValueError(f"a DNS name can point at one host name, got {values}") from None
        return "CNAME"


def hosts(nodes: list[str]) -> list[str]:
    """The addresses of `host:port` nodes, in order, without duplicates."""
    seen: list[str] = []
    for node in nodes:
        host = node.rsplit(":", 1)[0].strip("[]")
        if host not in seen:
            seen.append(host)
    return seen


class RecordProvider(ResourceProvider):
    serialize_as_secret_always = False

    def _apply(self, props: dict[str, Any]) -> dict[str, Any]:
        _update(props, list(props["values"]))
        # Confirm what resolvers will be told: the primary answers the new values and TTL.
        rtype = props.get("type", "A")
        want = (sorted(v.rstrip(".") for v in props["values"]), int(props["ttl"]))

        def answers(got: tuple[list[str], int | None]) -> bool:
            # With health checks (agents/edge/dns_health.py) a failed edge may already be out.
            if props.get("healthChecked") and got[0] and got[1] == want[1]:
                return set(got[0]) <= set(want[0])
            return got == want

        deadline = time.monotonic() + 5
        while not answers(lookup(props["name"], props["server"], rtype)):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        got = lookup(props["name"], props["server"], rtype)
        if not answers(got):
            raise RuntimeError(f"{props['name']} answers {got} after the update, expected {want}")
        return props

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["name"], outs=self._apply(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._apply(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("name", "zone", "server", "type", "values", "ttl", "keyName", "algorithm", "secret")
        keys += ("healthChecked",)
        changed = [k for k in keys if olds.get(k) != news.get(k)]
        replaces = [k for k in ("name", "zone", "server") if k in changed]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        try:
            _update(props, None)
        except RuntimeError:
            pass  # the server is gone with its zone (local: destroyed first); nothing to remove


class DnsRecord(Resource, module="rfc2136", name="DnsRecord"):
    """An A (or CNAME) record kept by RFC 2136 dynamic updates signed with a TSIG key."""

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["secret"])
        )
        super().__init__(RecordProvider(), name, props, opts)


def declare(
    name: str,
    parent: pulumi.Resource,
    settings: EdgeSettings,
    d: Dns,
    platform: EdgePlatform,
    edge_hosts: pulumi.Input[list[str]],
    arm_hosts: dict[str, pulumi.Input[list[str]]],
) -> list[pulumi.Resource]:
    """Declare the live name and each arm's name with the configured provider; an RFC 2136
    primary the platform runs itself (`EdgePlatform.dns_server`) comes first."""
    n = names(settings.app_name, d.zone)
    live_target = arm_hosts[settings.active_color] if d.switch else edge_hosts
    wanted = {n.live: live_target, **{n.arms[c]: arm_hosts[c] for c in arm_hosts}}
    opts = pulumi.ResourceOptions(parent=parent)
    if d.provider == "rfc2136":
        secret = pulumi.Config("bluegreen").require_secret("tsigSecret")
        depends = platform.dns_server(name, parent, settings, d, secret)
        # Several edges behind the live name: the platform's health agent withdraws a failed one.
        checked = health_checked(settings.sites, d)
        return depends + [
            DnsRecord(
                f"{name}-dns-{fqdn.split('.')[0]}",
                {
                    "name": fqdn,
                    "zone": d.zone,
                    "server": d.server,
                    "values": values,
                    "type": pulumi.Output.from_input(values).apply(record_type),
                    "ttl": d.ttl,
                    "keyName": d.tsig_key_name,
                    "algorithm": d.tsig_algorithm,
                    "secret": secret,
                    **({"healthChecked": True} if fqdn == n.live and checked else {}),
                },
                pulumi.ResourceOptions(parent=parent, depends_on=depends),
            )
            for fqdn, values in wanted.items()
        ]
    import pulumi_aws as aws

    # Several edges on aws: the live name routes by latency, with health checks (the platform's
    # `latency_sites`); not with the DNS switch (no edge behind the name).
    sites = platform.latency_sites(settings) if not d.switch else None
    routed = route53_latency(name, parent, settings, d, wanted.pop(n.live), sites) if sites else []
    return routed + [
        aws.route53.Record(
            f"{name}-dns-{fqdn.split('.')[0]}",
            zone_id=d.zone_id,
            name=fqdn,
            type=pulumi.Output.from_input(values).apply(record_type),
            ttl=d.ttl,
            records=values,
            opts=opts,
        )
        for fqdn, values in wanted.items()
    ]


# --- Route 53 latency routing: several edges on aws ------------------------------------------

HEALTH_INTERVAL_S = 10
HEALTH_FAILURES = 2
"""Route 53 withdraws an edge after this many failed checks this far apart; resolvers stop using
it within that (2 x 10 s) plus the record's TTL (bluegreen:dnsTtl): 50 s with the default 30."""


@dataclass(frozen=True)
class LatencySite:
    """One edge of the live name under latency routing: its site, AWS region, and scheme."""

    name: str
    region: str
    https: bool


def route53_latency(
    name: str,
    parent: pulumi.Resource,
    settings: EdgeSettings,
    d: Dns,
    edge_hosts: pulumi.Input[list[str]],
    sites: list[LatencySite],
) -> list[pulumi.Resource]:
    """The live name as one latency record per edge (`edge_hosts`, in site order), each a CNAME
    with the short TTL and withdrawn while the health check of its ALB fails: a user gets the
    nearest healthy edge. The first keeps the single edge's record name; it is replaced (a
    latency record cannot stand beside a plain one), deleted first and the others after it."""
    import pulumi_aws as aws

    fqdn = names(settings.app_name, d.zone).live
    hosts = pulumi.Output.from_input(edge_hosts)
    first: list[pulumi.Resource] = []
    declared: list[pulumi.Resource] = []
    for i, site in enumerate(sites):
        host = hosts.apply(lambda h, i=i: h[i])
        check = aws.route53.HealthCheck(
            f"{name}-health-{site.name}",
            type="HTTPS" if site.https else "HTTP",
            fqdn=host,
            port=443 if site.https else 80,
            resource_path=settings.health_path,
            request_interval=HEALTH_INTERVAL_S,
            failure_threshold=HEALTH_FAILURES,
            tags={"Name": f"bluegreen-{settings.app_name}-{site.name}"},
            opts=pulumi.ResourceOptions(parent=parent),
        )
        record = aws.route53.Record(
            f"{name}-dns-{fqdn.split('.')[0]}" + (f"-{site.name}" if i else ""),
            zone_id=d.zone_id,
            name=fqdn,
            type="CNAME",
            ttl=d.ttl,
            records=[host],
            set_identifier=site.name,
            latency_routing_policies=[
                aws.route53.RecordLatencyRoutingPolicyArgs(region=site.region)
            ],
            health_check_id=check.id,
            opts=pulumi.ResourceOptions(
                parent=parent, delete_before_replace=not i, depends_on=first
            ),
        )
        first = first or [record]
        declared.append(record)
    return declared
