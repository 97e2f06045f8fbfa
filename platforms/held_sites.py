"""What each edge of several serves after an update (bluegreen:edges), on a platform whose program
cannot ask its edges (aws, kubernetes): the pointer's colour and weights, unless a flip in waves
holds the site back (`moving`); then what the site served after this stack's last update, read
from the stack's own `edges` output with the engine's `readStackOutputs` invoke (no resource is
added to the stack; components/edge.py reads the arms' stacks the same way). The local platform
asks its nginx instead (platforms/local/local_sites.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi

from bluegreen.config import COLORS, ConfigError, EdgeSettings, qualified
from bluegreen.config_parts.edge_sites import MOVING_ENV, moving
from platforms.stack_outputs import read_outputs

Traffic = tuple[str, dict[str, int]]
"""A colour and the weights: what a site serves."""
COLORS_SORTED = sorted(COLORS)


def site_traffic(
    s: EdgeSettings, names: Sequence[str], environ: Mapping[str, str]
) -> dict[str, Traffic]:
    """The colour and weights each site serves after this update: the pointer's, unless a flip in
    waves holds the site back (`MOVING_ENV`); then what it served after this stack's last update
    (`served_before`). A site never deployed takes the pointer's."""
    pointer = (s.active_color, dict(s.weights))
    moves = moving(s.sites, environ)
    held = [name for name in names if moves is not None and name not in moves]
    if not held:
        return {name: pointer for name in names}
    served = served_before(s, names[0])
    return {name: served.get(name, pointer) if name in held else pointer for name in names}


def served_before(s: EdgeSettings, first: str) -> dict[str, Traffic]:
    """What each site deployed before serves, from this stack's last outputs: its own entry in
    `edges`, or, for a stack that had one edge (no `edges`), the first site, which kept that
    edge's objects, the top-level `activeColor` and `weights`. Read only for a flip in waves; a
    failed read fails the update, and an entry that says no traffic is refused, rather than
    move a site the wave holds."""
    name = qualified(s.stack, pulumi.get_organization(), pulumi.get_project())
    outputs = read_outputs(name) or {}
    if not outputs:
        return {}  # never deployed
    edges = outputs.get("edges")
    if edges is None:
        found = {first: _traffic(outputs)}
    else:
        edges = edges if isinstance(edges, Mapping) else {first: edges}
        found = {str(site): _traffic(traffic) for site, traffic in edges.items()}
    bad = [site for site, traffic in found.items() if traffic is None]
    if bad:
        raise ConfigError(
            [
                f"{MOVING_ENV} holds back sites of bluegreen:edges, but stack {name}'s last "
                f"outputs do not say what {', '.join(bad)} serves (an activeColor, and weights "
                "of blue and green adding up to 100): flip every site in one update, a bare "
                "`pulumi up` (nothing was changed)"
            ]
        )
    return {site: traffic for site, traffic in found.items() if traffic is not None}


def _traffic(value: object) -> Traffic | None:
    """The {"activeColor", "weights"} of the outputs, or of one site's, or None. The engine hands
    numbers over as floats: a weight is a whole number from 0 to 100."""
    if not isinstance(value, Mapping):
        return None
    color, weights = value.get("activeColor"), value.get("weights")
    if color not in COLORS or not isinstance(weights, Mapping) or sorted(weights) != COLORS_SORTED:
        return None
    whole = {c: int(w) for c, w in weights.items() if _whole(w) and 0 <= w <= 100}
    if len(whole) != len(COLORS) or sum(whole.values()) != 100:
        return None
    return str(color), {c: whole[c] for c in COLORS}


def _whole(w: object) -> bool:
    return isinstance(w, (int, float)) and not isinstance(w, bool) and float(w).is_integer()
