"""The writer lease of several edges, released at once (bluegreen:edges).

With one edge, the edge stamps the moment it began serving a new fence, and the new holder's
writers start a handover after that stamp. With several, each edge applies the change at its own
moment, and in a flip in waves some edges serve the old colour for minutes: a writer reading one
edge would start while another edge still told the old holder's writers to go on. So the edges of
several serve one lease the program chose for all of them (`local_sites.shared_lease`), none of
them stamps it, and an unstamped lease holds for nobody (switch.js serves `since` as now). This
resource runs after every edge's switch confirmed its state, and stamps them all: the handover
starts when every edge serves the new holder, and not before. Between the waves of a flip the
lease is held by nobody at all.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from platforms.local.edge_files import read_state, stamp


class LeaseStampProvider(ResourceProvider):
    serialize_as_secret_always = False

    def _apply(self, props: dict[str, Any]) -> dict[str, Any]:
        fence = int(props["fence"])
        leases = {d: (read_state(d) or {}).get("lease") or {} for d in props["runDirs"]}
        served = {d: lease.get("fence") for d, lease in leases.items()}
        off = {d: f for d, f in served.items() if f != fence}
        if off:
            raise RuntimeError(
                f"the writer lease was not released: every edge must serve fence {fence}, but "
                + ", ".join(f"{d} serves {f}" for d, f in off.items())
                + "; nobody holds the lease until an update brings every edge to one fence"
            )
        for run_dir in props["runDirs"]:
            stamp(run_dir, fence)
        return props

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="lease", outs=self._apply(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._apply(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("fence", "color", "runDirs") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed))


class LeaseStamp(Resource, module="local", name="LeaseStamp"):
    """The moment the writer lease every edge serves starts its handover, on all of them."""

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(LeaseStampProvider(), name, props, opts)
