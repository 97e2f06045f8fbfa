"""The live (edge) stack as the cutover reads and writes it: the config keys of its one pointer,
and its outputs as typed values.

A flip, a rollback and the CI watch move traffic by writing `POINTER` (with `CANARY` for a
canary step, and `MAINTENANCE` to freeze writes) in Pulumi.<stack>.yaml. What the edge serves
after an update is in the stack's outputs (__main__.py and components/edge.py export them);
`LiveOutputs.from_outputs` reads them, an arm stack's with `ArmOutputs.from_outputs`, and the
data stack's `schema` with `SchemaOutputs.from_outputs`. All tolerate missing keys (a stack never
deployed has no outputs; an older one lacks the newer ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bluegreen.reader import NAMESPACE

POINTER = f"{NAMESPACE}:activeColor"
"""The one pointer: the colour taking traffic."""
CANARY = f"{NAMESPACE}:canaryWeight"
"""The share (percent) of a canary step, set only while one is in progress."""
MAINTENANCE = f"{NAMESPACE}:maintenance"
"""Maintenance (read-only) mode, which `flip --freeze-writes` turns on for the flip."""

ACTIVE_COLOR = "activeColor"
WEIGHTS = "weights"
"""The outputs that say where traffic goes: also the keys of a `bluegreen status --json` record
and of an evidence record's `from` and `to`."""


def _mapping(value: object) -> dict | None:
    return dict(value) if isinstance(value, Mapping) else None


@dataclass(frozen=True)
class Traffic:
    """Which colour the edge serves and with what weights: what a flip or a rollback moves."""

    active_color: str | None = None
    weights: dict[str, int] | None = None

    @classmethod
    def from_outputs(cls, outputs: Mapping | None) -> Traffic:
        """From the stack's outputs, a `status --json` record or an evidence record's `from`
        or `to` (the same keys)."""
        outputs = outputs or {}
        return cls(outputs.get(ACTIVE_COLOR), _mapping(outputs.get(WEIGHTS)))

    def weight(self, color: str | None) -> int | None:
        return (self.weights or {}).get(color)


@dataclass(frozen=True)
class ArmOutputs:
    """An arm stack's outputs (or what the edge's `arms` output says of one arm)."""

    endpoint: str | None = None
    """Where the arm answers directly; None: not deployed."""
    version: str | None = None
    """The version its stack pins."""
    nodes: tuple[str, ...] = ()
    """Each node's host:port (the access log names upstreams by address)."""
    stack: str | None = None
    """The arm's stack, as the edge's `arms` output names it."""
    schema_revision: str | None = None
    """The schema revision its release needs (bluegreen:schemaRevision); None: it keeps no data."""

    @classmethod
    def from_outputs(cls, outputs: Mapping | None) -> ArmOutputs:
        outputs = outputs if isinstance(outputs, Mapping) else {}
        nodes = outputs.get("nodes")
        revision = outputs.get("schemaRevision")
        return cls(
            endpoint=outputs.get("endpoint"),
            version=outputs.get("version"),
            nodes=tuple(nodes) if isinstance(nodes, list | tuple) else (),
            stack=outputs.get("stack"),
            schema_revision=revision if isinstance(revision, str) else None,
        )


@dataclass(frozen=True)
class SchemaOutputs:
    """The data stack's `schema` output (components/data.py): what its database has applied."""

    applied: tuple[str, ...] = ()
    """The revisions applied, oldest first."""
    current: str | None = None
    phases: dict[str, str] = field(default_factory=dict)
    """Each revision's phase, "expand" or "contract"."""
    floor: str | None = None
    """What the newest applied contract `contracts`: a release needing a revision before it needs
    a shape that is gone. None: no contract applied."""

    @classmethod
    def from_outputs(cls, schema: object) -> SchemaOutputs:
        """From the `schema` output's value (anything else reads as nothing applied)."""
        schema = schema if isinstance(schema, Mapping) else {}
        applied, current, floor = schema.get("applied"), schema.get("current"), schema.get("floor")
        return cls(
            applied=tuple(str(r) for r in applied) if isinstance(applied, list | tuple) else (),
            current=current if isinstance(current, str) else None,
            phases={str(k): str(v) for k, v in (_mapping(schema.get("phases")) or {}).items()},
            floor=floor if isinstance(floor, str) else None,
        )

    @property
    def floor_contract(self) -> str | None:
        """The applied contract that set the floor: the newest applied contract revision."""
        if self.floor is None:
            return None
        return next((r for r in reversed(self.applied) if self.phases.get(r) == "contract"), None)

    def unsafe(self, need: str | None) -> str | None:
        """Why a release needing `need` cannot run on this database, as the end of "<colour> needs
        <need>, ..."; None: it can (it is applied, and no applied contract removed its shape; or it
        keeps no data)."""
        if need is None:
            return None
        if need not in self.applied:
            return "which is not applied"
        floor = self.floor
        if floor in self.applied and self.applied.index(need) < self.applied.index(floor):
            contract = self.floor_contract
            by = f"the applied contract {contract}" if contract else "an applied contract"
            return f"whose shape {by} removed"
        return None


@dataclass(frozen=True)
class LiveOutputs:
    """The edge stack's outputs: what it serves, and what the cutover reads besides."""

    deployed: bool = False
    """Whether the stack has outputs at all (it was deployed)."""
    traffic: Traffic = field(default_factory=Traffic)
    maintenance: bool | None = None
    url: str | None = None
    shadow: int = 0
    """The percent of live requests mirrored to the idle arm (bluegreen:shadow); 0: none."""
    arms: dict[str, ArmOutputs] | None = None
    """What the edge read of each arm; None when the stack does not say (an older edge)."""
    evidence: tuple[dict, ...] = ()
    """The evidence records of its traffic changes, oldest first (bluegreen/flip_evidence.py)."""
    metrics: dict | None = None
    """Where the hold reads live traffic (cutover/sources/ describes it); None: not said."""
    versions: dict[str, str] | None = None
    edges: dict[str, str] = field(default_factory=dict)
    """Each site's edge URL, when the stack has several edges (bluegreen:edges); {}: one edge,
    at `url`."""
    edge_traffic: dict[str, Traffic] = field(default_factory=dict)
    """What each site's edge was recorded serving by the last update that applied it."""
    data_stack: str | None = None
    """The data stack the edge read the applied schema revisions of; None: it read none."""
    rollback_window_minutes: int | None = None
    """bluegreen:rollbackWindowMinutes as the stack exports it; None: not said."""

    @classmethod
    def from_outputs(cls, outputs: Mapping | None) -> LiveOutputs:
        outputs = outputs or {}
        maintenance = outputs.get("maintenance")
        arms = _mapping(outputs.get("arms"))
        evidence = outputs.get("evidence")
        data_stack, window = outputs.get("dataStack"), outputs.get("rollbackWindowMinutes")
        return cls(
            deployed=bool(outputs),
            traffic=Traffic.from_outputs(outputs),
            maintenance=None if maintenance is None else bool(maintenance),
            url=outputs.get("url"),
            shadow=_percent(outputs.get("shadow")),
            arms=None if arms is None else {c: ArmOutputs.from_outputs(a) for c, a in arms.items()},
            evidence=tuple(r for r in evidence if isinstance(r, Mapping))
            if isinstance(evidence, list | tuple)
            else (),
            metrics=_mapping(outputs.get("metrics")),
            versions=_mapping(outputs.get("versions")),
            edges={
                str(site): e["url"]
                for site, e in (_mapping(outputs.get("edges")) or {}).items()
                if isinstance(e, Mapping) and isinstance(e.get("url"), str)
            },
            edge_traffic={
                str(site): Traffic.from_outputs(e)
                for site, e in (_mapping(outputs.get("edges")) or {}).items()
                if isinstance(e, Mapping)
            },
            data_stack=data_stack if isinstance(data_stack, str) and data_stack else None,
            rollback_window_minutes=None
            if isinstance(window, bool) or not isinstance(window, int)
            else window,
        )

    @property
    def active_color(self) -> str | None:
        return self.traffic.active_color

    @property
    def weights(self) -> dict[str, int] | None:
        return self.traffic.weights

    def weight(self, color: str | None) -> int | None:
        """The share of traffic `color` takes (None: not said)."""
        return self.traffic.weight(color)

    def served(self) -> dict:
        """What the edge serves, under the outputs' own names (as `status --json` prints it)."""
        return {
            ACTIVE_COLOR: self.active_color,
            WEIGHTS: self.weights,
            "maintenance": self.maintenance,
            "url": self.url,
        }


def _percent(value: object) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
