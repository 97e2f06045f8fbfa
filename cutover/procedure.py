"""The cutover procedure against the edge stack: flip, rollback, watch and status.

A flip is the procedure of the reference documents: move the one pointer (`pulumi config set` on
the edge stack's file, so a reviewer's diff is that line), preview and update with the policy pack
(the gate verifies pins and smoke-tests the new arm), hold and watch live traffic, roll back by
moving the same pointer back, and keep evidence in the flip log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cached_property

from bluegreen_policy.judge import Finding

from bluegreen import config, flip_evidence, probe
from bluegreen.config import COLORS, other
from bluegreen.reader import VERSION
from cutover import flip_log, queue, sources
from cutover.ci import CANARY, POINTER, traffic
from cutover.metrics import ColorStats, MetricsSource, Unreachable
from cutover.watch import Check, Verdict, hold
from cutover.workspace import PulumiError, Workspace

MAINTENANCE = "bluegreen:maintenance"

# The policy pack's name for its smoke test. The pack stands alone, so the name is pinned by a
# unit test (tests/unit/test_layers.py) rather than imported.
SMOKE_POLICY = "bluegreen-smoke-test"


@dataclass(frozen=True)
class Edge:
    """What the procedure reads from the edge stack's config."""

    stack: str
    arm_stacks: Mapping[str, str]
    health_path: str
    hold: config.Hold
    queue: queue.Where
    """Where the edge keeps write intents during maintenance (`bluegreen queue`)."""


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
    )


@dataclass
class _Flip:
    """One flip in progress: what it changes, and how far it got."""

    current: str | None
    target: str
    steps: list[int]
    freeze: bool
    before: dict[str, str | None]
    """The pointer, canary weight and maintenance keys in the edge stack's file before the flip."""
    served: dict
    """What the edge served before the flip (its outputs)."""
    fields: dict = field(default_factory=dict)
    """Common to each of the flip's log records."""
    step: int | None = None


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
    """The last hold's verdict (flip or watch), for whoever ran it."""
    notify: Callable[[str, str, dict], object] = _unheard
    """Told each event of a flip, watch or rollback as (command, phase, fields as the flip log
    names them); cutover/notify.py's webhook. It must return at once and never raise."""
    display: Callable[[str, int, float], AbstractContextManager[Check | None]] = _unseen
    """What the operator sees during a hold of (colour, weight, seconds): entered around the
    hold, it gives the hold's `on_check` (cutover/display.py)."""

    @cached_property
    def edge(self) -> Edge:
        return read_edge(self.ws, self.stack)

    rolled_back: bool = False
    """Whether the last watch or flip put the traffic back."""
    _served: tuple[dict, dict[str, dict]] | None = field(default=None, repr=False)

    @cached_property
    def log(self) -> flip_log.FlipLog:
        return flip_log.FlipLog(self.ws.project_dir)

    # --- what is there -------------------------------------------------------------------

    def served(self) -> tuple[dict, dict[str, dict]]:
        """The edge's outputs and each arm's (by colour): read once per command, all three
        stacks at once. What a command changes after this, it knows without reading again."""
        if self._served is None:
            arm_stacks = self.edge.arm_stacks
            found = self.ws.outputs_of([self.stack, *(arm_stacks[c] for c in COLORS)])
            self._served = (found[self.stack], {c: found[arm_stacks[c]] for c in COLORS})
        return self._served

    def live(self) -> dict:
        return self.served()[0]

    def arms(self) -> dict[str, dict]:
        return self.served()[1]

    def queue_where(self) -> queue.Where:
        """Where the edge keeps its write intents, with the PostgreSQL store's DSN decrypted
        (that secret alone) when the queue keeps them there."""
        where = self.edge.queue
        if not where.queue.enabled or where.queue.store != "postgresql":
            return where
        dsn = self.ws.config_get(self.stack, f"{config.NAMESPACE}:{config.QUEUE_DSN}")
        return dataclasses.replace(where, dsn=dsn)

    def _file(self, *keys: str) -> dict[str, str | None]:
        """These keys as the edge stack's file has them (None: not there)."""
        values = self.ws.file_config(self.stack)
        return {k: values.get(k) for k in keys}

    def _set(self, changes: Mapping[str, str | None]) -> None:
        """Write keys of the edge stack's config, in one command; None removes one."""
        self.ws.set_config(self.stack, changes)

    @staticmethod
    def _pointer(color: str, weight: int | None) -> dict[str, str | None]:
        canary = str(weight) if weight is not None and 0 < weight < 100 else None
        return {POINTER: color, CANARY: canary}

    def _source(self, live: dict, arms: dict[str, dict]) -> MetricsSource:
        """The metrics source the edge stack's outputs name, answering now; else `Unreachable`."""
        addresses = {n: c for c in COLORS for n in arms[c].get("nodes") or []}
        source = sources.from_output(live.get("metrics"), addresses)
        source.check()
        return source

    def _hold(
        self,
        source: MetricsSource,
        target: str,
        weight: int,
        baseline: ColorStats | None,
        hold_s: float,
        interval: float,
        rules: config.Hold,
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
            )
        return self.verdict

    def _match_edge(self) -> None:
        """Write the pointer the edge last applied back into its config, after a failed update
        (read again: the failed update may have applied part of it)."""
        live = self.ws.outputs(self.stack)
        color = live.get("activeColor")
        if color in COLORS:
            self._set(self._pointer(color, (live.get("weights") or {}).get(color)))

    # --- flip ----------------------------------------------------------------------------

    def flip(
        self,
        target: str,
        canary: list[int] | None = None,
        hold_s: float = 30.0,
        interval: float = 1.0,
        freeze_writes: bool = False,
        rules: config.Hold | None = None,
        shadow_s: float | None = None,
    ) -> int:
        """Move traffic to `target` in `canary` steps (default: all at once), holding each.
        When the edge mirrors live requests to `target` (bluegreen:shadow), it is first judged
        on them for `shadow_s` (default: as long as a hold; 0 skips it)."""
        rules = rules or self.edge.hold
        live = self.live()
        current = live.get("activeColor")
        if current == target and (live.get("weights") or {}).get(target) == 100:
            self.out(f"{target} is already live with all traffic; nothing to do")
            return 0
        arms = self.arms()
        try:
            source = self._source(live, arms)
        except Unreachable as err:
            self.out(f"flip to {target} refused, the pointer stays at {current}: {err}")
            self.log.record(event="flip", phase="refused", to=target, error=str(err))
            self.notify("flip", "refused", {"from": current, "to": target, "error": str(err)})
            return 1
        mirrored = live.get("shadow") and current == other(target)
        shadow_s = (hold_s if mirrored else 0.0) if shadow_s is None else shadow_s
        if shadow_s > 0 and self.shadow(shadow_s, interval, rules, live, arms) != 0:
            why = f"{target} did not hold on shadow traffic"
            self.out(f"flip to {target} refused, the pointer stays at {current}: {why}")
            self.log.record(event="flip", phase="refused", to=target, error=why)
            self.notify("flip", "refused", {"from": current, "to": target, "error": why})
            return 1
        run = _Flip(
            current=current,
            target=target,
            steps=canary or [100],
            freeze=freeze_writes,
            before=self._file(POINTER, CANARY, MAINTENANCE),
            served=live,
        )
        run.fields = {
            "id": uuid.uuid4().hex[:12],
            "from": current,
            "to": target,
            "versions": {c: arms[c].get("version") for c in COLORS},
            "steps": run.steps,
        }
        self.log.record(event="flip", phase="started", **run.fields)
        self.notify("flip", "started", {**run.fields, "weights": live.get("weights")})
        baseline = self._baseline(source, current)
        start = time.perf_counter()
        end: dict = {"phase": "failed"}
        try:
            with flip_log.SmokeReport() as report:
                end = self._steps(run, report, source, baseline, hold_s, interval, rules)
        except PulumiError as err:
            self.out(str(err))
            end = {
                "phase": "failed",
                "failedStep": run.step,
                "violations": err.outcome.records(),
                "error": err.summary,
            }
        except KeyboardInterrupt:
            self.out(f"interrupted {_during(run.step)}")
            end = {"phase": "interrupted", "step": run.step}
            raise
        finally:
            end.update(self._put_back(run, end))
            if end["phase"] == "done":
                end["seconds"] = round(time.perf_counter() - start, 2)
            self.log.record(event="flip", **run.fields, **end)
            self.notify("flip", end["phase"], {**run.fields, **end})
        if end["phase"] != "done":
            return 1
        self.out(f"flip {current} -> {target} done in {end['seconds']:.1f} s")
        return 0

    def _steps(
        self,
        run: _Flip,
        report: flip_log.SmokeReport,
        source: MetricsSource,
        baseline: ColorStats | None,
        hold_s: float,
        interval: float,
        rules: config.Hold,
    ) -> dict:
        """Freeze writes if asked, then each step: pointer, preview, update, hold. Raises
        PulumiError on a refusal or failure; returns how it ended otherwise."""
        if run.freeze:
            self._set({MAINTENANCE: "true"})
            self.ws.up(self.stack)
        gated = self.ws.with_env(report.env)  # the gate writes its smoke figures to the report
        amend: dict | None = None  # the previous step's hold, for its record
        for step in run.steps:
            run.step = step
            self._set(self._pointer(run.target, step))
            # Preview first, as a careful operator would: the gate judges the step there, and a
            # refusal costs one smoke sample and changes nothing.
            gated.preview(self.stack, diff=True)
            noted = {"command": "bluegreen flip", "flip": run.fields["id"], "step": step}
            _noting(gated, amend, noted).up(self.stack)
            run.fields["smoke"] = report.figures() or run.fields.get("smoke", {})
            for line in judged(run.fields["smoke"], run.target, run.current):
                self.out(f"gate {line}")
            self.out(f"{run.target} now takes {step}% of traffic; holding {hold_s:g} s")
            # Only requests after this step took effect count toward its verdict.
            verdict = self._hold(source, run.target, step, baseline, hold_s, interval, rules)
            seen = flip_log.seen(verdict.stats)
            for line in judged(_hold_note(verdict, "")["hold"], run.target, run.current):
                self.out(f"hold {line}")
            if verdict.outcome != "held":
                what = "stop rule broken" if verdict.outcome == "breach" else "inconclusive"
                self.out(f"{what} during the {step}% step: {verdict.reason}; rolling back")
                return {
                    "phase": "rolled-back",
                    "step": step,
                    "verdict": verdict.outcome,
                    "breach": verdict.reason,
                    "seen": seen,
                }
            self.out(f"held {verdict.seconds:.1f} s at {step}%: {json.dumps(seen)}")
            amend = _hold_note(verdict, "held")
            if step != run.steps[-1]:  # the last step's is the whole flip's (phase done)
                self.notify("flip", "held", {**run.fields, "step": step, "seen": seen})
        flip_id = run.fields["id"]
        self._annotate(amend, lambda record: record.get("flip") == flip_id)
        return {"phase": "done", "outcome": "ok", "seen": seen}

    def _put_back(self, run: _Flip, end: dict) -> dict:
        """A flip's cleanup, on every path: unless it finished, the pointer goes back to where it
        was (rolled back if the edge had applied a step); writes frozen for it are let through
        again. One update does both. Returns what to add to the flip's log record."""
        done = end["phase"] == "done"
        restore = {k: v for k, v in run.before.items() if k != MAINTENANCE} if not done else {}
        if run.freeze:
            restore[MAINTENANCE] = run.before[MAINTENANCE]
        if not restore:
            return {}
        try:
            self._set(restore)
            if done:  # the flip finished: only the writes it froze are let through again
                self.ws.up(self.stack)
                return {}
            # It did not finish. A hold ran only after its step was applied: back at once, with
            # nothing read. Else what the edge serves now says whether any step was applied.
            served = run.served if "verdict" in end else self.ws.outputs(self.stack)
            moved = "verdict" in end or traffic(served) != traffic(run.served)
            if moved:
                what = "was interrupted" if end["phase"] == "interrupted" else "failed"
                reason = end.get("breach") or f"the flip to {run.target} {what}"
                reason += f" {_during(run.step)}"
                back = run.current or run.before[POINTER] or other(run.target)
                amend = _hold_note(self.verdict, "rolled-back") if "verdict" in end else None
                if self._update_back(run.target, back, reason, served.get("url"), amend=amend):
                    return {"cleanup": "the rollback failed: see the rollback record"}
                return {}
            if served.get("maintenance") != run.served.get("maintenance"):
                self.ws.up(self.stack)
            self.out(f"the pointer stays at {run.current}: nothing was applied")
        except PulumiError as err:
            self.out(f"could not put the edge back as it was:\n{err}")
            return {"cleanup": err.summary}
        return {}

    def _annotate(self, amend: dict | None, belongs: Callable[[dict], bool]) -> None:
        """Write a hold's verdict into the record of the traffic change it watched, in the live
        stack's state (cutover/flip_log.py `amend_last`: no update). A failure costs the note,
        not the flip."""
        if not amend:
            return
        try:
            flip_log.amend_last(self.ws, self.stack, amend, belongs)
        except (PulumiError, flip_log.NotAmended) as err:
            self.out(f"warning: the hold's verdict is not in the live stack's evidence: {err}")

    @staticmethod
    def _baseline(source: MetricsSource, color: str | None) -> ColorStats | None:
        """What `color` served recently (before a flip), if it served enough to compare with."""
        if color is None:
            return None
        s = source.recent(color)
        return s if s.requests >= 50 else None

    # --- rollback ------------------------------------------------------------------------

    def rollback(self, reason: str = "operator request") -> int:
        """Flip back to the other colour as fast as safely possible and report time to recover.

        The shortest path to traffic back: the pointer the edge stack's file names (nothing read
        from the state first), one config write and one update, its gate only checking that the
        colour going back into service is ready. Everything else comes after."""
        start = time.perf_counter()
        current = self._file(POINTER)[POINTER]
        if current not in COLORS:
            self.out("rollback: the live stack has no active colour yet; nothing to roll back")
            return 1
        # Mid-canary too: the other colour is the one that had all the traffic before.
        target = other(current)
        self._set(self._pointer(target, None))
        code = self._update_back(current, target, reason, None, start, command="rollback")
        phase = "rolled-back" if code == 0 else "failed"
        self.notify("rollback", phase, {"from": current, "to": target, "reason": reason})
        return code

    def _update_back(
        self,
        current: str | None,
        target: str,
        reason: str,
        url: str | None,
        start: float | None = None,
        amend: dict | None = None,
        command: str = "rollback after a hold",
    ) -> int:
        """The update that moves traffic back to `target`, its config already written. The arm
        going back into service must still be ready, but the side-by-side comparison is skipped:
        the other arm is the one being escaped. On failure the config matches the edge again.
        Time to recover counts from `start` (default: now) until `target` answers at `url` (when
        known; else until the update, which confirms that it answers, returns). The record of
        the change it undoes gets `amend` (the hold that broke); its own, the reason. The flip
        log is written once the traffic is back."""
        fields = {"from": current, "to": target, "reason": reason}
        start = start or time.perf_counter()
        done = False
        try:
            with _FirstAnswer(url, target, start) as first, _rollback_gate(self.ws) as gate:
                noted = {"command": f"bluegreen {command}", "reason": reason}
                result = _noting(self.ws, amend, noted).up(self.stack, policy_config=gate)
                wall = time.perf_counter() - start
                ttr = first.wait(10) or wall
            done = True
        except PulumiError as err:
            self.log.record(
                event="rollback",
                phase="failed",
                **fields,
                violations=err.outcome.records(),
                error=err.summary,
            )
            self.out(str(err))
            return 1
        finally:
            if not done:
                self._match_edge()
        self.rolled_back = True
        before, after = result.outcome.stack_outputs
        moved = traffic(before) != traffic(after)
        self.log.record(
            event="rollback",
            phase="done",
            outcome="ok" if moved else "unmoved",
            **fields,
            seconds=round(wall, 2),
            timeToRecover=round(ttr, 2),
        )
        if not moved:
            self.out(f"the edge already served {target}: nothing moved (update {wall:.2f} s)")
            return 0
        self.out(
            f"rolled back {current} -> {target}: {target} answering after {ttr:.2f} s "
            f"(update {wall:.2f} s)"
        )
        return 0

    # --- shadow ---------------------------------------------------------------------------

    def shadow(
        self,
        hold_s: float,
        interval: float = 1.0,
        rules: config.Hold | None = None,
        live: dict | None = None,
        arms: dict[str, dict] | None = None,
    ) -> int:
        """Before anyone is moved: judge the idle arm on the live requests the edge mirrors to it
        (bluegreen:shadow), by the hold's judge against the live arm over the same seconds. The
        answer is 0 when it held; a breach, or too little shadow traffic to judge, is 1."""
        rules = rules or self.edge.hold
        live = live if live is not None else self.live()
        color = live.get("activeColor")
        weights = live.get("weights") or {}
        if color not in COLORS or weights.get(color) != 100:
            self.out(
                "shadow: needs one colour taking all traffic (no canary step in progress); "
                f"the edge serves {json.dumps(weights)}"
            )
            return 1
        idle, percent = other(color), int(live.get("shadow") or 0)
        if not percent:
            self.out(
                f"shadow: the edge of stack {self.stack} mirrors nothing to {idle}: set "
                f"bluegreen:shadow (percent of live requests, e.g. 10) in its config and run "
                f"pulumi up -s {self.stack}"
            )
            return 1
        try:
            source = self._source(live, arms if arms is not None else self.arms())
        except Unreachable as err:
            self.out(f"shadow: cannot compare {idle}: {err}")
            return 1
        baseline = self._baseline(source, color)
        self.out(
            f"shadow: judging {idle} on {percent}% of live requests, mirrored, against {color} "
            f"for {hold_s:g} s through {source.describe}"
        )
        verdict = self._hold(source, idle, 0, baseline, hold_s, interval, rules)
        seen = flip_log.seen(verdict.stats)
        self.log.record(
            event="shadow", phase=verdict.outcome, to=idle, seen=seen, reason=verdict.reason
        )
        if verdict.outcome != "held":
            self.out(f"shadow: {idle} is not ready for users: {verdict.reason}")
            self.notify(
                "shadow", verdict.outcome, {"to": idle, "reason": verdict.reason, "seen": seen}
            )
            return 1
        self.out(
            f"shadow: {idle} held on mirrored traffic for {verdict.seconds:.1f} s: "
            f"{json.dumps(seen)}"
        )
        return 0

    # --- watch and status ----------------------------------------------------------------

    def watch(
        self,
        hold_s: float,
        interval: float = 1.0,
        rules: config.Hold | None = None,
        live: dict | None = None,
    ) -> int:
        """Hold and watch the colour taking traffic now (`live`: the edge's outputs, if the
        caller has just read them); roll back on a breach or an inconclusive hold."""
        rules = rules or self.edge.hold
        live = live if live is not None else self.live()
        color = live.get("activeColor")
        if color not in COLORS:
            self.out("watch: the live stack has no active colour yet; nothing to watch")
            return 1
        weight = (live.get("weights") or {}).get(color, 100)
        try:
            source = self._source(live, self.arms())
        except Unreachable as err:
            self.out(f"watch: cannot watch {color}: {err}")
            return 1
        baseline = self._baseline(source, other(color))
        self.out(f"watching {color} at {weight}% for {hold_s:g} s through {source.describe}")
        verdict = self._hold(source, color, weight, baseline, hold_s, interval, rules)
        seen = flip_log.seen(verdict.stats)
        if verdict.outcome != "held":
            what = "stop rule broken" if verdict.outcome == "breach" else "inconclusive"
            self.out(f"{what}: {verdict.reason}; rolling back")
            self._set(self._pointer(other(color), None))
            code = self._update_back(
                color,
                other(color),
                str(verdict.reason),
                live.get("url"),
                amend=_hold_note(verdict, "rolled-back"),
            )
            back = {"from": color, "to": other(color), "reason": verdict.reason, "seen": seen}
            self.notify("watch", "rolled-back" if code == 0 else "failed", back)
            return 1
        self.out(f"held {verdict.seconds:.1f} s: {json.dumps(seen)}")
        watched = traffic(live)
        self._annotate(
            _hold_note(verdict, "held"),
            lambda record: traffic(record.get("to") or {}) == watched,
        )
        self.notify("watch", "held", {"to": color, "step": weight, "seen": seen})
        return 0

    def status(self) -> int:
        """What the edge serves and how each arm answers now, from the live stack's outputs
        alone (one `pulumi` process): the arms it names are asked directly (readiness, and the
        version each serves). Arm stacks are read only when the live stack names none."""
        live = self.ws.outputs(self.stack)
        arms = live.get("arms") if isinstance(live.get("arms"), dict) else None
        if not live:
            self.out(f"{self.stack}: not deployed (pulumi up --stack {self.stack})")
        else:
            w = live.get("weights") or {}
            self.out(
                f"{self.stack}: {live.get('activeColor')}  "
                f"weights blue {w.get('blue')} / green {w.get('green')}  "
                f"maintenance {'ON' if live.get('maintenance') else 'off'}  edge {live.get('url')}"
            )
        if arms is None or set(arms) != set(COLORS):
            found = self.ws.outputs_of(self.edge.arm_stacks[c] for c in COLORS)
            arms = {c: found[self.edge.arm_stacks[c]] for c in COLORS}
        for color in COLORS:
            self.out(self._arm_line(color, arms[color]))
        changes = (live.get("evidence") or [])[-5:]
        self.out(
            f"traffic changes ({self.stack} stack's evidence):"
            if changes
            else f"traffic changes ({self.stack} stack's evidence): none recorded"
        )
        for r in changes:
            self.out("  " + describe_record(r))
        if changes:  # the last change's judged figures, before it and after it
            last = changes[-1]
            to = (last.get("to") or {}).get("activeColor") or ""
            was = (last.get("from") or {}).get("activeColor")
            for what, figures in (("gate", last.get("smoke")), ("hold", last.get("hold"))):
                for line in judged(figures, to, was if was != to else other(to)):
                    self.out(f"    {what} {line}")
        for line in queue.status_lines(self.queue_where()):
            self.out(line)
        entries = self.log.last(5)
        self.out(
            "this machine's flip log:" if entries else "this machine's flip log: none recorded"
        )
        for e in entries:
            self.out(
                f"  {e['time']} {e['event']:<8} {e.get('from')} -> {e.get('to')}  {e.get('phase')}"
                f"{'  ' + e['breach'] if e.get('breach') else ''}  by {e['who']}"
            )
        return 0

    def _arm_line(self, color: str, arm: dict) -> str:
        """An arm as status shows it: the version it serves (else the one its stack pins), its
        readiness, its endpoint."""
        endpoint = arm.get("endpoint")
        if not endpoint:
            return f"  {color:<5} not deployed (stack {self.edge.arm_stacks[color]})"
        ready = probe.readiness(endpoint, self.edge.health_path)
        said = ready.json().get("version") if ready.status == 200 else None
        # What an arm answers is printed to a terminal: only a version the config could hold.
        serving = said if VERSION.fits(said) else None
        health = "ready" if ready.status == 200 else ready.describe()
        pinned = arm.get("version")
        if said is not None and serving is None:
            note = "  (answers a version that is not one: not shown)"
        else:
            note = f"  (the edge last read {pinned})" if serving and serving != pinned else ""
        return f"  {color:<5} {serving or pinned:<10} {health:<8} {endpoint}{note}"


def judged(figures: Mapping | None, target: str, live: str | None) -> list[str]:
    """The judge's findings in a gate's figures or a hold's note, one sentence each."""
    decision = (figures or {}).get("judge") or {}
    found = [Finding.from_record(f) for f in decision.get("findings") or []]
    return [f.sentence(target, live or other(target)) for f in found]


def _traffic_text(t: dict | None) -> str:
    if not t:
        return "nothing"
    w = t.get("weights") or {}
    color = t.get("activeColor")
    return color if w.get(color) == 100 else f"{color} {w.get(color)}%"


def describe_record(r: dict) -> str:
    """One line of an evidence record, as `bluegreen status` shows it."""
    hold = r.get("hold") or {}
    verdict = f" ({hold.get('verdict')}: {hold['reason']})" if hold.get("reason") else ""
    versions = " / ".join(f"{c} {v}" for c, v in (r.get("versions") or {}).items())
    return (
        f"{r.get('time')}  {_traffic_text(r.get('from'))} -> {_traffic_text(r.get('to'))}  "
        f"{r.get('outcome')}{verdict}  [{versions}]  by {r.get('who')} at {r.get('where')}"
        f"  commit {r.get('commit')}"
    )


def _hold_note(verdict: Verdict | None, outcome: str) -> dict | None:
    """What a record of a traffic change gets from the hold that watched it."""
    if verdict is None:
        return None
    return {
        "hold": {
            "verdict": verdict.outcome,
            "reason": verdict.reason,
            "seconds": round(verdict.seconds, 1),
            "seen": flip_log.seen(verdict.stats),
            **({"judge": verdict.decision.record()} if verdict.decision else {}),
        },
        "outcome": outcome,
    }


def _noting(ws: Workspace, amend: dict | None, record: dict | None) -> Workspace:
    """`ws` for an update whose evidence gets `amend` (into the last record) and `record` (into
    the one it appends, if it moves traffic); bluegreen/flip_evidence.py."""
    note = {k: v for k, v in (("amend", amend), ("record", record)) if v}
    return ws.with_env({flip_evidence.NOTE_ENV: json.dumps(note)}) if note else ws


def _during(step: int | None) -> str:
    return f"during the {step}% step" if step else "before the first step"


class _FirstAnswer:
    """Notes when `color` first answers at `url`, on a thread stopped and joined on leaving."""

    def __init__(self, url: str | None, color: str, start: float) -> None:
        self.url, self.color, self.start = url, color, start
        self.seconds: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _FirstAnswer:
        if self.url:
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            if probe.request(self.url, timeout=1).color == self.color:
                self.seconds = time.perf_counter() - self.start
                return
            self._stop.wait(0.01)

    def wait(self, timeout: float) -> float | None:
        if self._thread.is_alive():
            self._thread.join(timeout)
        return self.seconds

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


@contextlib.contextmanager
def _rollback_gate(ws: Workspace) -> Iterator[str | None]:
    """The shipped policy config with the side-by-side comparison off, as a temporary file."""
    if not ws.policy_pack:
        yield None
        return
    with open(os.path.join(ws.project_dir, ws.policy_pack, "config.json")) as f:
        cfg = json.load(f)
    cfg.setdefault(SMOKE_POLICY, {})["compareArms"] = False
    with tempfile.NamedTemporaryFile("w", prefix="bluegreen-rollback-", suffix=".json") as f:
        json.dump(cfg, f)
        f.flush()
        yield f.name
