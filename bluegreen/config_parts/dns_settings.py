"""The settings of the DNS records the edge declares (bluegreen:dns*, tsig*)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast

from bluegreen.reader import HOST_NAME, Alphabet, Reader, is_host


@dataclass(frozen=True)
class Dns:
    """The DNS records the edge declares: <app>.<zone> (live), blue.<zone>, green.<zone>."""

    provider: Literal["route53", "rfc2136"]
    zone: str
    ttl: int
    switch: bool
    """DNS-based switch: the live name points at the active arm rather than at the edge."""
    zone_id: str
    """Route 53 hosted zone id ("" for rfc2136)."""
    server: str
    """RFC 2136: host:port of the primary that accepts updates."""
    tsig_key_name: str
    tsig_algorithm: str


_ZONE = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\.?")
_TSIG = ("hmac-sha256", "hmac-sha384", "hmac-sha512")
_DNS_NAME = Alphabet(HOST_NAME.pattern, "a DNS name")


def read_dns(read: Reader) -> Dns | None:
    provider = read.choice(
        "dnsProvider", ("none", "route53", "rfc2136"), '"none", "route53" or "rfc2136"'
    )
    if provider == "none":
        return None
    zone = read.required("dnsZone", f": bluegreen:dnsProvider {provider} needs a zone")
    zone = zone.rstrip(".").lower()
    if zone and not _ZONE.fullmatch(zone + "."):
        read.problem("dnsZone", zone, "a DNS zone such as shop.example.com")
    zone_id = ""
    if provider == "route53":
        zone_id = read.required("dnsZoneId", ": Route 53 needs the hosted zone id")
    server = read.declared("dnsServer")
    host, _, port = server.rpartition(":")
    if not host or not is_host(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        read.problem("dnsServer", server, "host:port")
    return Dns(
        provider=cast(Literal["route53", "rfc2136"], provider),
        zone=zone,
        ttl=read.integer("dnsTtl", 1, 86400),
        switch=read.flag("dnsSwitch"),
        zone_id=zone_id,
        server=server,
        tsig_key_name=read.matching("tsigKeyName", _DNS_NAME),
        tsig_algorithm=read.choice(
            "tsigAlgorithm", _TSIG, "hmac-sha256, hmac-sha384 or hmac-sha512"
        ),
    )
