"""Several edges in front of the same two arms (bluegreen:edges), and the waves a flip walks them
in (bluegreen:waves).

An edge here is a site: a name the operator chooses (`site-a`, `eu-west`) and the place the
platform runs that edge, which each platform reads in its own terms (a loopback address on
`local`, a node on `nixos`). Everything else about the edges is shared: one stack update gives
each the same serving state. Without bluegreen:edges the stack has the one edge it always had.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from bluegreen.config_parts.dns_settings import Dns
from bluegreen.reader import ConfigError, Reader

MOVING_ENV = "BLUEGREEN_MOVING_EDGES"
"""Set by `bluegreen flip` for a flip in waves: the sites (a JSON list) that take
bluegreen:activeColor in this update, the waves moved so far; every other site keeps serving what
it serves. Unset (a bare `pulumi up`, CI, a rollback): every site moves in the one update."""

MAX_SITES = 16
_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
_PLACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_@/-]{0,252}")
SITES_ALLOWED = (
    'a JSON object of up to 16 edges, each a site name (lower-case letters, digits and "-", '
    "starting with a letter) and its place (a loopback address on local, a node on nixos, an "
    'AWS region on aws, a kube context on kubernetes), such as {"site-a": "127.0.0.1", '
    '"site-b": "127.0.0.2"}'
)
WAVES_ALLOWED = (
    "a JSON list of waves, each a non-empty list of the site names in bluegreen:edges, every "
    'site in exactly one wave, such as [["site-a"], ["site-b", "site-c"]]'
)


@dataclass(frozen=True)
class Site:
    name: str
    place: str
    """Where the platform runs this edge: a loopback address (local), a node (nixos)."""


@dataclass(frozen=True)
class Sites:
    sites: tuple[Site, ...] = ()
    """The edges bluegreen:edges declares, in its order; () for the single default edge."""
    waves: tuple[tuple[str, ...], ...] = ()
    """Each wave's site names, in the order a flip moves them; () without sites."""

    @property
    def several(self) -> bool:
        return bool(self.sites)

    def named(self, name: str) -> Site:
        return next(s for s in self.sites if s.name == name)


def read_sites(read: Reader) -> Sites:
    raw = read.optional("edges")
    if raw is None or not raw.strip():
        if read.optional("waves"):
            read.problem("waves", read.optional("waves"), "unset while bluegreen:edges is unset")
        return Sites()
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not 1 <= len(value) <= MAX_SITES:
        read.problem("edges", raw, SITES_ALLOWED)
        return Sites()
    sites = []
    for name, place in value.items():
        if not _NAME.fullmatch(name) or not isinstance(place, str) or not _PLACE.fullmatch(place):
            read.problem("edges", raw, SITES_ALLOWED)
            return Sites()
        sites.append(Site(name, place))
    return Sites(tuple(sites), _waves(read, [s.name for s in sites]))


def _waves(read: Reader, names: list[str]) -> tuple[tuple[str, ...], ...]:
    raw = read.optional("waves")
    if raw is None or not raw.strip():
        return (tuple(names),)
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    ok = (
        isinstance(value, list)
        and value
        and all(isinstance(w, list) and w and all(isinstance(n, str) for n in w) for w in value)
    )
    listed = [n for w in value for n in w] if ok else []
    if not ok or sorted(listed) != sorted(names):
        missing = [n for n in names if n not in listed]
        extra = sorted({n for n in listed if n not in names or listed.count(n) > 1})
        why = "".join(
            [
                f"; not in any wave: {', '.join(missing)}" if ok and missing else "",
                f"; unknown or repeated: {', '.join(extra)}" if ok and extra else "",
            ]
        )
        read.problem("waves", raw, WAVES_ALLOWED + why)
        return (tuple(names),)
    return tuple(tuple(w) for w in value)


def moving(sites: Sites, environ: Mapping[str, str]) -> frozenset[str] | None:
    """The sites this update moves (`MOVING_ENV`), or None: all of them."""
    raw = environ.get(MOVING_ENV)
    if not raw or not sites.several:
        return None
    try:
        names = json.loads(raw)
    except ValueError:
        names = None
    known = [s.name for s in sites.sites]
    if not isinstance(names, list) or not names or any(n not in known for n in names):
        raise ConfigError(
            [
                f"{MOVING_ENV} must be a non-empty JSON list of the site names in "
                f'bluegreen:edges ({", ".join(known)}), got "{raw}" (nothing was changed)'
            ]
        )
    return frozenset(names)


def health_checked(sites: Sites, dns: Dns | None) -> bool:
    """Several edges behind an RFC 2136 live name (not the DNS switch): a health agent keeps the
    name to the edges that answer (agents/edge/dns_health.py)."""
    return dns is not None and dns.provider == "rfc2136" and sites.several and not dns.switch
