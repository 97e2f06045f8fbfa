"""The writer lease of several NixOS edge nodes (bluegreen:edges): one lease on every node, which
no node stamps itself, released on all of them at once (`EdgeLeaseStamp`).

Why one lease, and why nobody between waves, is the local platform's reasoning
(platforms/local/lease_stamp.py): a writer reading one edge must not start while another edge
still tells the old holder's writers to go on. Each node serves `{holder, fence}`, `shared`: the
module then leaves the stamp out of activation (nixos/modules/edge-node/switch-state.nix), and an
unstamped lease holds for nobody (switch.js serves its `since` as now).

Who chooses it. The holder is the program's (`holder`): the colour every site serves after this
update (held_sites.site_traffic: the pointer's, or in a flip in waves what the held sites served
after the stack's last update), None while they serve different colours. The fence is each node's
host resource's, at deploy and in its diff (host.EdgeHostProvider), from what the nodes serve:
its own record, its own node and every other node, read over HTTP (host.peer_leases), then
`shared_lease`: the highest one's fence while it has this holder, one above it otherwise. Nodes
that switch first serve exactly the lease the others then compute, so reading them before or
after gives the same answer, and every node of one update comes to one lease. The stack's last
outputs would be simpler to read but can lag: after a failed update they still say what served
before it, while the nodes that switched serve the new lease (Pulumi records them, not the
stack's outputs), and a fence chosen from the outputs could then set those nodes and the others
apart with no later update bringing them together. A node whose lease lags (one not reached, a
restore after a failed confirmation) shows a change in its next diff, since the diff reads the
nodes too, and follows the others.

The release. `EdgeLeaseStamp` depends on every edge host, so it runs once all of them switched
and confirmed: it checks that they all recorded one lease and stamps `lease-<fence>` on every node
at once, over the deploy's ssh (the stamp activation leaves for one edge). Nodes that do not
agree fail the update and are not stamped: nobody's writers start until an update brings them
together.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from bluegreen import nginx
from platforms.nixos import ssh_deploy
from platforms.nixos.ssh_deploy import DeployError

LEASE_DIR = "/var/lib/bluegreen-edge/lease"
"""Where an edge node keeps the lease's stamp (`leaseDir` in nixos/modules/edge-node/common.nix)."""
_NODE_KEYS = ("host", "user", "port", "knownHosts", "remoteDir")


def holder(traffic: Mapping[str, tuple[str, Any]]) -> str | None:
    """Who holds the lease after this update: the colour every site serves (`traffic`, by site),
    or None for nobody while they serve different ones (between the waves of a flip)."""
    colors = {color for color, _ in traffic.values()}
    return colors.pop() if len(colors) == 1 else None


def shared_lease(
    holder: str | None,
    recorded: Mapping[str, Any] | None,
    followed: Mapping[str, Any] | None,
    handover: int,
    now: float,
) -> nginx.Lease:
    """The lease a node of several serves: `followed` (the highest any node serves, or this
    resource's record) kept while `holder` holds it, else one fence above it. `since` is the
    record's while its fence stays, else `now`."""
    fence = nginx.Lease.next(followed, holder, handover, now).fence
    return nginx.Lease.across_edges({"color": holder, "fence": fence}, recorded, handover, now)


def stamp_props(connections: Mapping[str, Mapping[str, Any]], leases: Mapping[str, Any]) -> dict:
    """The stamp's inputs: how to reach each site's node (`Ssh.connection`), the one key, where
    the node keeps its stamp, and the lease each node's host recorded (Outputs)."""
    first = next(iter(connections.values()))
    return {
        "nodes": {
            site: {**{k: c[k] for k in _NODE_KEYS}, "leaseDir": LEASE_DIR}
            for site, c in connections.items()
        },
        "leases": dict(leases),
        "sshKey": first["sshKey"],
    }


def stamp_script(lease_dir: str, fence: int) -> str:
    """Shell run on a node: stamp `fence` unless it is stamped already, then drop the other
    fences' stamps (the activation script's steps)."""
    name = nginx.LEASE_STAMP.format(fence=int(fence))
    return (
        f'set -eu; d={shlex.quote(lease_dir)}; f="$d/{name}"; mkdir -p -m 0755 "$d"; '
        'if [ ! -e "$f" ]; then touch "$f"; '
        'for s in "$d"/lease-*; do [ "$s" = "$f" ] || rm -f "$s"; done; fi'
    )


def _lease(value: Any) -> tuple[str | None, int] | None:
    if isinstance(value, Mapping) and isinstance(value.get("fence"), (int, float)):
        return value.get("color"), int(value["fence"])
    return None


def _said(lease: tuple[str | None, int] | None) -> str:
    return f"fence {lease[1]} held by {lease[0] or 'nobody'}" if lease else "no lease"


def one_lease(props: Mapping[str, Any]) -> tuple[str | None, int]:
    """The lease every node recorded; a DeployError naming each node's when they differ."""
    served = {site: _lease(lease) for site, lease in props["leases"].items()}
    distinct = set(served.values())
    if len(distinct) == 1 and None not in distinct:
        return distinct.pop()
    nodes = props["nodes"]
    raise DeployError(
        "the writer lease was not released: every edge node must serve one lease, but "
        + "; ".join(
            f"{s} ({nodes[s]['host']}) serves {_said(x)}" for s, x in sorted(served.items())
        )
        + ". Nobody's writers start until an update brings every node to one lease: run "
        "`pulumi up -s live` again once every node can be reached"
    )


class EdgeLeaseStampProvider(ResourceProvider):
    serialize_as_secret_always = False

    def _apply(self, props: dict[str, Any]) -> dict[str, Any]:
        color, fence = one_lease(props)
        nodes = props["nodes"]

        def stamp(site: str) -> str | None:
            node = {**nodes[site], "sshKey": props["sshKey"]}
            return ssh_deploy.remote(node, stamp_script(node["leaseDir"], fence))

        with ThreadPoolExecutor(max_workers=min(8, len(nodes))) as pool:
            said = dict(zip(nodes, pool.map(stamp, nodes), strict=True))
        failed = {site: why for site, why in said.items() if why is not None}
        if failed:
            raise DeployError(
                f"the writer lease (fence {fence} held by {color or 'nobody'}) could not be "
                "stamped on "
                + "; ".join(f"{s} ({nodes[s]['host']}): {why}" for s, why in sorted(failed.items()))
                + ". Every node serves it, but nobody's writers start on a node without the "
                "stamp: run `pulumi up -s live` again"
            )
        return props

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="lease", outs=self._apply(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._apply(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        def seen(props: dict[str, Any]) -> tuple:
            leases = props.get("leases")
            leases = leases if isinstance(leases, Mapping) else {}
            return props.get("nodes"), {s: _lease(lease) for s, lease in leases.items()}

        return DiffResult(changes=seen(olds) != seen(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """The stamps stay: each says when its node began serving its fence, which a node that
        is the one edge again stamps itself from then on."""


class EdgeLeaseStamp(Resource, module="nixos", name="EdgeLeaseStamp"):
    """The moment the writer lease every edge node serves starts its handover, on all of them."""

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["sshKey"])
        )
        super().__init__(EdgeLeaseStampProvider(), name, props, opts)
