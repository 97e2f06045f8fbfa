"""The cutover procedure against the edge stack: what its operations share.

A flip is the procedure of the reference documents: move the one pointer (`pulumi config set` on
the edge stack's file, so a reviewer's diff is that line), preview and update with the policy pack
(the gate verifies pins and smoke-tests the new arm), hold and watch live traffic, roll back by
moving the same pointer back, and keep evidence in the flip log.

`Operator` is the context every operation runs in: the workspace, the edge stack's config, what
the stacks serve (read once per command), the pointer written, the metrics source, the hold and
its display, the flip log and the notices. The operations are one module each, and each returns a
`Report` (cutover/results.py): cutover/flip.py, rolling_back.py, shadow.py, watching.py and
status.py, each a function of an `Operator`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cached_property

from bluegreen import config
from bluegreen.config import COLORS
from bluegreen.config_parts.edge_sites import Sites
from bluegreen.live_stack import CANARY, POINTER, ArmOutputs, LiveOutputs
from cutover import flip_log, queue
from cutover.hold import Check, Verdict, hold
from cutover.sources import factory
from cutover.sources.interface import ColorStats, MetricsSource
from cutover.workspace import PulumiError, Workspace


@dataclass(frozen=True)
class Edge:
    """What the procedure reads from the edge stack's config."""

    stack: str
    arm_stacks: Mapping[str, str]
    health_path: str
    hold: config.Hold
    queue: queue.Where
    """Where the edge keeps write intents during maintenance (`bluegreen queue`)."""
    sites: Sites = Sites()
    """Its edges (bluegreen:edges) and the waves a flip walks them in (bluegreen:waves)."""


def read_edge(ws: Workspace, stack: str) -> Edge:
    """The edge stack's config, validated; `config.ConfigError` names what is wrong. Read from
    its files, decrypting nothing: a secret is read where it is used (`Operator.queue_where`)."""
    prefix = config.NAMESPACE + ":"
    values = {
        k.removeprefix(prefix): v for k, v in ws.config(stack).items() if k.startswith(prefix)
    }
    if values.get("role") != "edge":
        raise config.ConfigError(
            [
                f'{prefix}role of stack "{stack}" is "{values.get("role")}": the cutover needs '
                'the edge stack, whose role is "edge" (e.g. live)'
            ]
        )
    settings = config.from_stack_config(values, stack, ws.project_dir)
    return Edge(
        stack=stack,
        arm_stacks=dict(settings.arm_stacks),
        health_path=settings.health_path,
        hold=settings.hold,
        queue=queue.Where(stack, settings.run_dir, settings.maintenance.queue),
        sites=settings.sites,
    )


def _unheard(command: str, phase: str, fields: dict) -> None:
    """No one to tell (no webhook)."""


def _unseen(color: str, weight: int, seconds: float) -> AbstractContextManager[None]:
    """No display during a hold."""
    return contextlib.nullcontext()


@dataclass
class Operator:
    ws: Workspace
    stack: str = "live"
    """The edge stack."""
    out: Callable[[str], object] = print
    keep_holding: bool = False
    """An inconclusive hold (too little traffic to judge) goes on until it can judge, rather
    than rolling back."""
    verdict: Verdict | None = None
    """The last hold's verdict (flip, watch or shadow), for whoever ran it."""
    notify: Callable[[str, str, dict], object] = _unheard
    """Told each event of a flip, watch or rollback as (command, phase, fields as the flip log
    names them); cutover/notify.py's webhook. It must return at once and never raise."""
    display: Callable[[str, int, float], AbstractContextManager[Check | None]] = _unseen
    """What the operator sees during a hold of (colour, weight, seconds): entered around the
    hold, it gives the hold's `on_check` (cutover/display.py)."""
    _served: tuple[LiveOutputs, dict[str, ArmOutputs]] | None = field(default=None, repr=False)

    @cached_property
    def edge(self) -> Edge:
        return read_edge(self.ws, self.stack)

    @cached_property
    def log(self) -> flip_log.FlipLog:
        return flip_log.FlipLog(self.ws.project_dir)

    # --- what is there -------------------------------------------------------------------

    def served(self) -> tuple[LiveOutputs, dict[str, ArmOutputs]]:
        """The edge's outputs and each arm's (by colour): read once per command, all three
        stacks at once. What a command changes after this, it knows without reading again."""
        if self._served is None:
            arm_stacks = self.edge.arm_stacks
            found = self.ws.outputs_of([self.stack, *(arm_stacks[c] for c in COLORS)])
            self._served = (
                LiveOutputs.from_outputs(found[self.stack]),
                {c: ArmOutputs.from_outputs(found[arm_stacks[c]]) for c in COLORS},
            )
        return self._served

    def live(self) -> LiveOutputs:
        return self.served()[0]

    def arms(self) -> dict[str, ArmOutputs]:
        return self.served()[1]

    def outputs_now(self) -> LiveOutputs:
        """The edge's outputs, read again (after an update that may have changed them)."""
        return LiveOutputs.from_outputs(self.ws.outputs(self.stack))

    def queue_where(self) -> queue.Where:
        """Where the edge keeps its write intents, with the PostgreSQL store's DSN decrypted
        (that secret alone) when the queue keeps them there."""
        where = self.edge.queue
        if not where.queue.enabled or where.queue.store != "postgresql":
            return where
        dsn = self.ws.config_get(self.stack, f"{config.NAMESPACE}:{config.QUEUE_DSN}")
        return dataclasses.replace(where, dsn=dsn)

    # --- the pointer ---------------------------------------------------------------------

    def file_values(self, *keys: str) -> dict[str, str | None]:
        """These keys as the edge stack's file has them (None: not there)."""
        values = self.ws.file_config(self.stack)
        return {k: values.get(k) for k in keys}

    def set_config(self, changes: Mapping[str, str | None]) -> None:
        """Write keys of the edge stack's config, in one command; None removes one."""
        self.ws.set_config(self.stack, changes)

    @staticmethod
    def pointer(color: str, weight: int | None) -> dict[str, str | None]:
        canary = str(weight) if weight is not None and 0 < weight < 100 else None
        return {POINTER: color, CANARY: canary}

    def match_edge(self) -> None:
        """Write the pointer the edge last applied back into its config, after a failed update
        (read again: the failed update may have applied part of it)."""
        live = self.outputs_now()
        color = live.active_color
        if color in COLORS:
            self.set_config(self.pointer(color, live.weight(color)))

    # --- the hold ------------------------------------------------------------------------

    def source(
        self,
        live: LiveOutputs,
        arms: Mapping[str, ArmOutputs],
        sites: Sequence[str] | None = None,
    ) -> MetricsSource:
        """The metrics source the edge stack's outputs name, answering now; else `Unreachable`.
        `sites`: only these edges' traffic, where the source tells edges apart."""
        addresses = {n: c for c in COLORS for n in arms[c].nodes}
        source = factory.from_output(live.metrics, addresses, sites)
        source.check()
        return source

    @staticmethod
    def baseline(source: MetricsSource, color: str | None) -> ColorStats | None:
        """What `color` served recently (before a flip), if it served enough to compare with."""
        if color is None:
            return None
        s = source.recent(color)
        return s if s.requests >= 50 else None

    def hold(
        self,
        source: MetricsSource,
        target: str,
        weight: int,
        baseline: ColorStats | None,
        hold_s: float,
        interval: float,
        rules: config.Hold,
        parts: Mapping[str, MetricsSource] | None = None,
    ) -> Verdict:
        with self.display(target, weight, hold_s) as on_check:
            self.verdict = hold(
                source,
                target,
                weight,
                baseline,
                hold_s,
                interval,
                rules,
                keep_holding=self.keep_holding,
                on_check=on_check,
                parts=parts,
            )
        return self.verdict

    def annotate(self, amend: dict | None, belongs: Callable[[dict], bool]) -> None:
        """Write a hold's verdict into the record of the traffic change it watched, in the live
        stack's state (cutover/flip_log.py `amend_last`: no update). A failure costs the note,
        not the flip."""
        if not amend:
            return
        try:
            flip_log.amend_last(self.ws, self.stack, amend, belongs)
        except (PulumiError, flip_log.NotAmended) as err:
            self.out(f"warning: the hold's verdict is not in the live stack's evidence: {err}")
