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

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from bluegreen.config import COLORS, Dns, EdgeSettings
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


# --- RFC 2136 --------------------------------------------------------------------------------


def _server(props: dict[str, Any]) -> tuple[str, int]:
    host, port = props["server"].rsplit(":", 1)
    return host, int(port)


def _update(props: dict[str, Any], values: list[str] | None) -> None:
    """Replace (or, with None, delete) the record's rrset, signed with the TSIG key."""
    keyring = dns.tsigkeyring.from_text({props["keyName"]: (props["algorithm"], props["secret"])})
    update = dns.update.UpdateMessage(
        props["zone"], keyring=keyring, keyalgorithm=props["algorithm"]
    )
    relative = props["name"][: -len(props["zone"]) - 1]
    rtype = props.get("type", "A")
    if values is None:
        update.delete(relative, rtype)
    else:
        data = values if rtype == "A" else [values[0].rstrip(".") + "."]
        update.replace(relative, int(props["ttl"]), rtype, *data)
    host, port = _server(props)
    try:
        reply = dns.query.tcp(update, host, port=port, timeout=5)
    except (OSError, dns.exception.DNSException) as err:
        raise RuntimeError(
            f"DNS update of {props['name']} at {props['server']} failed: "
            f"{err or type(err).__name__} (check bluegreen:dnsServer and the TSIG key "
            "bluegreen:tsigKeyName/tsigSecret)"
        ) from None
    if reply.rcode() != dns.rcode.NOERROR:
        raise RuntimeError(
            f"DNS update of {props['name']} at {props['server']} was refused: "
            f"{dns.rcode.to_text(reply.rcode())}"
        )


def lookup(name: str, server: str, rtype: str = "A") -> tuple[list[str], int | None]:
    """The values and TTL `server` answers for `name` (empty when it has none)."""
    host, port = server.rsplit(":", 1)
    reply = dns.query.udp(dns.message.make_query(name, rtype), host, port=int(port), timeout=2)
    for rrset in reply.answer:
        if rtype == "A":
            return sorted(r.address for r in rrset), rrset.ttl
        return sorted(r.to_text().rstrip(".") for r in rrset), rrset.ttl
    return [], None


class RecordProvider(ResourceProvider):
    serialize_as_secret_always = False

    def _apply(self, props: dict[str, Any]) -> dict[str, Any]:
        _update(props, list(props["values"]))
        # Confirm what resolvers will be told: the primary answers the new values and TTL.
        rtype = props.get("type", "A")
        want = (sorted(v.rstrip(".") for v in props["values"]), int(props["ttl"]))
        deadline = time.monotonic() + 5
        while lookup(props["name"], props["server"], rtype) != want and time.monotonic() < deadline:
            time.sleep(0.05)
        got = lookup(props["name"], props["server"], rtype)
        if got != want:
            raise RuntimeError(f"{props['name']} answers {got} after the update, expected {want}")
        return props

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["name"], outs=self._apply(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._apply(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("name", "zone", "server", "type", "values", "ttl", "keyName", "algorithm", "secret")
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
                },
                pulumi.ResourceOptions(parent=parent, depends_on=depends),
            )
            for fqdn, values in wanted.items()
        ]
    import pulumi_aws as aws

    return [
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
