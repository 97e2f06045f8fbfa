"""The sites of the local edge: one nginx each, on a loopback address of its own standing in for
a site (bluegreen:edges), and what is refused about them before anything changes."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from bluegreen.config import ConfigError, EdgeSettings
from platforms.local.edge_files import master_pid, read_state
from platforms.local.process import port_in_use


@dataclass(frozen=True)
class Site:
    """One nginx of the local edge: a site of bluegreen:edges, or the single default edge."""

    name: str
    """The site's name; "" for the single edge of a stack without bluegreen:edges."""
    host: str
    port: int
    run_dir: str
    """Its own directory: the first site keeps the stack's, so one edge can grow into several
    without its nginx being replaced."""

    @property
    def listen(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.listen})" if self.name else self.listen

    def reachable(self) -> bool:
        return master_pid(self.run_dir) is not None and port_in_use(self.host, self.port)


def refuse_bad_places(s: EdgeSettings) -> None:
    """On local, each site of bluegreen:edges is a loopback address of its own."""
    places = [site.place for site in s.sites.sites]
    bad = []
    for site in s.sites.sites:
        try:
            ok = ipaddress.IPv4Address(site.place).is_loopback
        except ValueError:
            ok = False
        if not ok:
            bad.append(f"{site.name}: {site.place!r}")
    if bad or len(set(places)) != len(places):
        given = json.dumps({site.name: site.place for site in s.sites.sites})
        why = f"not loopback: {', '.join(bad)}" if bad else "an address is used twice"
        raise ConfigError(
            [
                "bluegreen:edges must give each site its own IPv4 loopback address on the local "
                f"platform (127.0.0.1 to 127.255.255.254), got {given}: {why} "
                "(nothing was changed)"
            ]
        )


def refuse_moving_past_an_unreachable_edge(s: EdgeSettings, sites: list[Site]) -> None:
    """A flip moves every site or none: an update that moves traffic while a site deployed
    before cannot be reached is refused before any site moves. An update that moves nothing
    starts that site's nginx again (nginx_edge.py's diff), so that is the way back."""
    if len(sites) < 2:
        return  # the single edge: `pulumi up` starts it again, moving or not, as it always has
    states = {site.name: read_state(site.run_dir) for site in sites}
    target = (s.active_color, s.weights)
    moving = any(
        st is not None and (st.get("active"), st.get("weights")) != target for st in states.values()
    )
    down = [site.label for site in sites if states[site.name] is not None and not site.reachable()]
    if moving and down:
        raise ConfigError(
            [
                f"bluegreen:activeColor {s.active_color} would move traffic, but the edge "
                f"{', '.join(down)} cannot be reached (its nginx is not running): a flip moves "
                "every edge or none. Bring it back with an update that moves no traffic "
                "(bluegreen:activeColor as it is served now), or take it out of bluegreen:edges "
                "(nothing was changed)"
            ]
        )


def site_traffic(
    s: EdgeSettings, site: Site, moves: frozenset[str] | None
) -> tuple[str, dict[str, int]]:
    """The colour and weights `site` serves after this update: the pointer's, unless a flip in
    waves does not move this site yet (`moves`, bluegreen/config_parts/edge_sites.py), which
    keeps what it serves now (a site never deployed takes the pointer's)."""
    if moves is None or site.name in moves:
        return s.active_color, s.weights
    state = read_state(site.run_dir)
    if not state or state.get("active") not in ("blue", "green"):
        return s.active_color, s.weights
    weights = {str(c): int(w) for c, w in (state.get("weights") or {}).items()}
    return state["active"], weights


def shared_lease(
    sites: list[Site], traffic: dict[str, tuple[str, dict[str, int]]]
) -> dict[str, object]:
    """The writer lease every site serves after this update (lease_stamp.py says why one):
    held by the colour they all serve, or by nobody while they serve different ones (between the
    waves of a flip). The same fence while that holds; else one above the highest any serves."""
    colors = {active for active, _ in traffic.values()}
    color = colors.pop() if len(colors) == 1 else None
    served = [(read_state(site.run_dir) or {}).get("lease") for site in sites]
    fences = {int(lease["fence"]) for lease in served if lease}
    same = all(lease and lease.get("color") == color for lease in served) and len(fences) == 1
    return {"color": color, "fence": fences.pop() if same else max(fences, default=0) + 1}
