"""The edge nodes of the nixos live stack: one per site of bluegreen:edges, whose place is the
node's address, or the single bluegreen:edgeNode; and what is refused about them before anything
changes.

bluegreen:edgeNode is the one-edge default. With bluegreen:edges set it must be unset: each site
names its own node, and a stack that said both would leave a reader guessing which one serves.
"""

from __future__ import annotations

import ipaddress
import json

from bluegreen.config import EdgeSettings
from bluegreen.config_parts.edge_sites import Site
from bluegreen.reader import NAMESPACE, is_host
from platforms.base import refused

NODES_ALLOWED = (
    "each site's place must be the address of its own NixOS edge node, an IP address or a host "
    'name, such as {"site-a": "10.0.1.2", "site-b": "edge-b.example.com"}'
)


def edge_sites(s: EdgeSettings, edge_node: str) -> list[Site]:
    """Each edge node this stack deploys: the sites of bluegreen:edges in their order, or the
    single bluegreen:edgeNode (a site named "")."""
    return list(s.sites.sites) if s.sites.several else [Site("", edge_node)]


def resource_name(name: str, index: int, site: Site) -> str:
    """The edge host's resource: the first site keeps the one edge's name (`live-<node>`), so a
    stack with one edge grows into several without replacing it; the others add `-<site>`."""
    return f"{name}-{site.place}" + (f"-{site.name}" if index else "")


def _is_ip(place: str) -> bool:
    try:
        ipaddress.ip_address(place)
        return True
    except ValueError:
        return False


def _same_node(place: str) -> str:
    """The node a place names, for telling two spellings of one address apart."""
    return str(ipaddress.ip_address(place)) if _is_ip(place) else place.lower().rstrip(".")


def refusals(s: EdgeSettings, edge_node: str) -> list[str]:
    """bluegreen:edges with bluegreen:edgeNode, a place that is not a host, a node twice, a node
    by host name where DNS records need its address."""
    if not s.sites.several:
        return []
    given = json.dumps({site.name: site.place for site in s.sites.sites})
    found = []
    if edge_node:
        found.append(
            refused(
                "edgeNode",
                edge_node,
                f"{NAMESPACE}:edges is set too ({given}), and names each site's edge node",
                f"unset {NAMESPACE}:edgeNode (the one edge of a stack without "
                f"{NAMESPACE}:edges), or put its node in {NAMESPACE}:edges",
            )
        )
    bad = [f"{site.name}: {site.place!r}" for site in s.sites.sites if not is_host(site.place)]
    seen: dict[str, list[str]] = {}
    for site in s.sites.sites:
        seen.setdefault(_same_node(site.place), []).append(site.name)
    twice = [f"{node} ({', '.join(names)})" for node, names in seen.items() if len(names) > 1]
    named = [site.name for site in s.sites.sites if is_host(site.place) and not _is_ip(site.place)]
    if s.dns and not s.dns.switch and named:
        # The live name then holds one record per edge node, and only A records come several.
        found.append(
            f"{NAMESPACE}:edges is {given} on the nixos platform with {NAMESPACE}:dnsProvider "
            f'"{s.dns.provider}", but the live name gets an A record for each edge node, and '
            f"{', '.join(named)} name their node by host name: give each site its node's IP "
            "address (nothing was changed)"
        )
    if bad or twice:
        why = "; ".join(
            ([f"not a host: {', '.join(bad)}"] if bad else [])
            + ([f"a node used twice: {', '.join(twice)}"] if twice else [])
        )
        found.append(
            f"{NAMESPACE}:edges is {given} on the nixos platform, but {NODES_ALLOWED}: {why} "
            "(nothing was changed)"
        )
    return found
