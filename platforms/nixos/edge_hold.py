"""What an edge node of several that a flip in waves does not move yet serves (bluegreen:waves).

The program cannot read what a node serves, but the node's host resource knows what it deployed
last (its outputs). So the program marks such a site's inputs with `HOLD`, and the provider
(`host.EdgeHostProvider`) renders it with the new settings but the colour and weights it served:
nothing that moves traffic changes there. Its writer lease is the one every node serves
(`SHARED`, lease_release.py): held by nobody while the nodes serve different colours, so the
first wave switches a held node once, for the lease alone; unless another setting changed, the
later waves do not. A site never deployed takes the pointer's traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HOLD = "holdTraffic"
"""The input that says: keep serving the traffic you served (a directive, never recorded)."""

PEERS = "peers"
"""The input listing the other edges' URLs, whose served writer lease every edge follows."""

SHARED = "sharedLease"
"""The input of a site of several: `{"holder": colour}`, who holds the one writer lease every
node serves ("" for nobody, between the waves of a flip: the engine drops a None); the fence is
the node's to find (lease_release.py)."""


def color_header(weights: Mapping[str, Any]) -> dict[str, str]:
    """What the confirmation expects through the edge: the one colour that takes every request,
    nothing during a canary split (either colour may answer)."""
    targets = sorted(c for c, w in weights.items() if w > 0)
    return {"x-bluegreen-color": targets[0]} if len(targets) == 1 else {}


def held(props: Mapping[str, Any], olds: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`props` as the site serves them while it holds: the traffic of its last deploy (`olds`'
    `edge`), confirmed by that colour. None when it does not hold: no `HOLD`, or no deploy yet."""
    previous = (olds or {}).get("edge")
    if not props.get(HOLD) or not previous:
        return None
    spec = {
        **props["edge"],
        "activeColor": previous["activeColor"],
        "weights": dict(previous["weights"]),
    }
    kept = {k: v for k, v in props.items() if k != HOLD}
    confirm = props.get("confirm")
    if confirm:
        kept["confirm"] = {**confirm, "headers": color_header(spec["weights"])}
    return {**kept, "edge": spec}
