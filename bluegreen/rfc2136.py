"""RFC 2136 dynamic updates signed with a TSIG key, and reading an answer back: what the live
stack's records (platforms/dns.py) and the edges' health agent (agents/edge/dns_health.py) both
do to an authoritative server such as Knot, BIND or PowerDNS."""

from __future__ import annotations

from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update

DNSException = dns.exception.DNSException


def _server(props: dict[str, Any]) -> tuple[str, int]:
    host, port = props["server"].rsplit(":", 1)
    return host, int(port)


def update(props: dict[str, Any], values: list[str] | None) -> None:
    """Replace (or, with None, delete) the record's rrset, signed with the TSIG key."""
    keyring = dns.tsigkeyring.from_text({props["keyName"]: (props["algorithm"], props["secret"])})
    message = dns.update.UpdateMessage(
        props["zone"], keyring=keyring, keyalgorithm=props["algorithm"]
    )
    relative = props["name"][: -len(props["zone"]) - 1]
    rtype = props.get("type", "A")
    if values is None:
        message.delete(relative, rtype)
    else:
        data = values if rtype == "A" else [values[0].rstrip(".") + "."]
        message.replace(relative, int(props["ttl"]), rtype, *data)
    host, port = _server(props)
    try:
        reply = dns.query.tcp(message, host, port=port, timeout=5)
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
