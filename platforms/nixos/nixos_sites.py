"""The edge nodes of the nixos live stack: one per site of bluegreen:edges, whose place is the
node's address, or the single bluegreen:edgeNode; and what is refused about them before anything
changes.

bluegreen:edgeNode is the one-edge default. With bluegreen:edges set it must be unset: each site
names its own node, and a stack that said both would leave a reader guessing which one serves.
A flip moves every node or none: one that moves traffic while a node deployed before cannot be
reached over ssh is refused before any node is switched (`refuse_moving_past_an_unreachable_node`).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bluegreen.config import ConfigError, EdgeSettings
from bluegreen.config_parts.edge_sites import Site, moving
from bluegreen.reader import NAMESPACE, is_host
from platforms import held_sites
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


def refuse_moving_past_an_unreachable_node(
    s: EdgeSettings, reach: Callable[[str], str | None]
) -> None:
    """The local platform's rule (local_sites.refuse_moving_past_an_unreachable_edge) over ssh:
    an update that moves traffic on any node, while a node deployed before does not answer
    `reach` (None: it answers; else what ssh said), is refused before any node is switched.
    What each node serves and which were deployed come from the stack's last outputs
    (held_sites.served_before); the nodes are asked only when traffic would move, all at once.
    One edge is left as it always was: its update fails at its own deploy."""
    if not s.sites.several:
        return
    served = held_sites.served_before(s, s.sites.sites[0].name)
    moves = moving(s.sites, os.environ)
    pointer = (s.active_color, dict(s.weights))
    deployed = [site for site in s.sites.sites if site.name in served]
    if not any((moves is None or x.name in moves) and served[x.name] != pointer for x in deployed):
        return
    with ThreadPoolExecutor(max_workers=min(8, len(deployed))) as pool:
        answers = pool.map(reach, [x.place for x in deployed])
        said = dict(zip([x.name for x in deployed], answers, strict=True))
    down = [f"{x.name} ({x.place}: {said[x.name]})" for x in deployed if said[x.name]]
    if down:
        raise ConfigError(
            [
                f"{NAMESPACE}:activeColor {s.active_color} would move traffic, but the edge node "
                f"{'; '.join(down)} cannot be reached over ssh: a flip moves every edge or none. "
                f"Bring it back, or take it out of {NAMESPACE}:edges (nothing was changed)"
            ]
        )
