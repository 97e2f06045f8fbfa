"""`bluegreen flip`: move traffic to a colour in canary steps, holding and watching each.

A flip is a small state machine on the one pointer: refused before it moves when the metrics
source does not answer (or the colour does not hold on shadow traffic); then per step the pointer,
a preview and an update through the gate, and a hold; and on every way out `_put_back`, which
moves the pointer back unless the flip finished and lets frozen writes through again.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bluegreen import config
from bluegreen.config import COLORS, other
from bluegreen.config_parts.edge_sites import MOVING_ENV
from bluegreen.live_stack import CANARY, MAINTENANCE, POINTER, LiveOutputs
from cutover import flip_log, rolling_back
from cutover import shadow as shadowing
from cutover.hold import judged
from cutover.results import Outcome, Report
from cutover.sources.interface import ColorStats, MetricsSource, Unreachable
from cutover.workspace import PulumiError

if TYPE_CHECKING:
    from cutover.operator import Operator


@dataclass
class _Flip:
    """One flip in progress: what it changes, and how far it got."""

    current: str | None
    target: str
    steps: list[int]
    freeze: bool
    before: dict[str, str | None]
    """The pointer, canary weight and maintenance keys in the edge stack's file before the flip."""
    served: LiveOutputs
    """What the edge served before the flip (its outputs)."""
    waves: tuple[tuple[str, ...], ...] = ()
    """The edges' waves (bluegreen:waves), one step each; () for a flip of every edge at once."""
    fields: dict = field(default_factory=dict)
    """Common to each of the flip's log records."""
    step: int | None = None
    wave: int | None = None


def flip(
    op: Operator,
    target: str,
    canary: list[int] | None = None,
    hold_s: float = 30.0,
    interval: float = 1.0,
    freeze_writes: bool = False,
    rules: config.Hold | None = None,
    shadow_s: float | None = None,
) -> Report:
    """Move traffic to `target` in `canary` steps (default: all at once), holding each.
    When the edge mirrors live requests to `target` (bluegreen:shadow), it is first judged
    on them for `shadow_s` (default: as long as a hold; 0 skips it)."""
    rules = rules or op.edge.hold
    sites = op.edge.sites
    waves = sites.waves if sites.several and len(sites.waves) > 1 else ()
    if waves and canary:
        return _refused(
            op,
            op.live().active_color,
            target,
            "--canary steps and bluegreen:waves do not combine yet: a flip in waves moves each "
            "wave's edges all at once; leave out --canary, or bluegreen:waves",
        )
    live = op.live()
    current = live.active_color
    if current == target and live.weight(target) == 100:
        op.out(f"{target} is already live with all traffic; nothing to do")
        return Report(Outcome.UNCHANGED)
    arms = op.arms()
    try:
        source = op.source(live, arms)
    except Unreachable as err:
        return _refused(op, current, target, str(err))
    mirrored = live.shadow and current == other(target)
    shadow_s = (hold_s if mirrored else 0.0) if shadow_s is None else shadow_s
    if shadow_s > 0:
        shadowed = shadowing.shadow(op, shadow_s, interval, rules, live, arms)
        if shadowed.outcome is not Outcome.DONE:
            return _refused(op, current, target, f"{target} did not hold on shadow traffic")
    run = _Flip(
        current=current,
        target=target,
        steps=[100] * len(waves) if waves else canary or [100],
        freeze=freeze_writes,
        before=op.file_values(POINTER, CANARY, MAINTENANCE),
        served=live,
        waves=waves,
    )
    run.fields = {
        "id": uuid.uuid4().hex[:12],
        "from": current,
        "to": target,
        "versions": {c: arms[c].version for c in COLORS},
        "steps": run.steps,
        **({"waves": [list(w) for w in waves]} if waves else {}),
    }
    op.log.record(event="flip", phase="started", **run.fields)
    op.notify("flip", "started", {**run.fields, "weights": live.weights})
    baseline = op.baseline(source, current)
    start = time.perf_counter()
    end: dict = {"phase": "failed"}
    try:
        with flip_log.SmokeReport() as report:
            end = _steps(op, run, report, source, baseline, hold_s, interval, rules)
    except PulumiError as err:
        op.out(str(err))
        end = {
            "phase": "failed",
            "failedStep": run.step,
            "violations": err.outcome.records(),
            "error": err.summary,
        }
    except KeyboardInterrupt:
        op.out(f"interrupted {_during(run.step, run.wave)}")
        end = {"phase": "interrupted", "step": run.step}
        raise
    finally:
        end.update(_put_back(op, run, end))
        if end["phase"] == "done":
            end["seconds"] = round(time.perf_counter() - start, 2)
        op.log.record(event="flip", **run.fields, **end)
        op.notify("flip", end["phase"], {**run.fields, **end})
    if end["phase"] == "done":
        op.out(f"flip {current} -> {target} done in {end['seconds']:.1f} s")
        return Report(Outcome.DONE, verdict=op.verdict)
    why = end.get("breach") or end.get("error")
    if end["phase"] == "rolled-back" and not end.get("cleanup"):
        return Report(Outcome.ROLLED_BACK, why, op.verdict)
    return Report(Outcome.FAILED, end.get("cleanup") or why, op.verdict)


def _refused(op: Operator, current: str | None, target: str, why: str) -> Report:
    """Before anything changed: the pointer stays where it is."""
    op.out(f"flip to {target} refused, the pointer stays at {current}: {why}")
    op.log.record(event="flip", phase="refused", to=target, error=why)
    op.notify("flip", "refused", {"from": current, "to": target, "error": why})
    return Report(Outcome.REFUSED, why)


def _steps(
    op: Operator,
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
        op.set_config({MAINTENANCE: "true"})
        op.ws.up(op.stack)
    gated = op.ws.with_env(report.env)  # the gate writes its smoke figures to the report
    amend: dict | None = None  # the previous step's hold, for its record
    waves_seen: list[dict] = []  # each wave's verdict, for the one record of the whole flip
    for i, step in enumerate(run.steps):
        run.step = step
        op.set_config(op.pointer(run.target, step))
        ws, held = gated, source
        # Only requests after this step took effect count toward its verdict. A wave's edges
        # send the target all their traffic; where the source cannot tell edges apart, nothing
        # says what share of it the wave's edges carry, so there is no share to expect.
        per_edge = bool((run.served.metrics or {}).get("sites"))
        if run.waves:
            run.wave = i + 1
            moved = [site for wave in run.waves[: i + 1] for site in wave]
            ws = gated.with_env({MOVING_ENV: json.dumps(moved)})
        # Preview first, as a careful operator would: the gate judges the step there, and a
        # refusal costs one smoke sample and changes nothing.
        ws.preview(op.stack, diff=True)
        noted = {"command": "bluegreen flip", "flip": run.fields["id"], "step": step}
        flip_log.noting(ws, amend, noted).up(op.stack)
        run.fields["smoke"] = report.figures() or run.fields.get("smoke", {})
        for line in judged(run.fields["smoke"], run.target, run.current):
            op.out(f"gate {line}")
        parts = {}
        if run.waves:
            # The wave's own edges' traffic, where the source tells edges apart (the access
            # logs); else all of it, which sends the target only what the moved edges send.
            # There, each of the wave's edges is judged on its own traffic as well.
            held = op.source(run.served, op.arms(), run.waves[i])
            if per_edge and len(run.waves[i]) > 1:
                parts = {site: op.source(run.served, op.arms(), (site,)) for site in run.waves[i]}
            op.out(
                f"wave {i + 1} of {len(run.waves)} ({', '.join(run.waves[i])}): {run.target} "
                f"now takes their traffic; holding {hold_s:g} s"
            )
        else:
            op.out(f"{run.target} now takes {step}% of traffic; holding {hold_s:g} s")
        weight = step if not run.waves or per_edge else 0
        verdict = op.hold(held, run.target, weight, baseline, hold_s, interval, rules, parts)
        seen = flip_log.seen(verdict.stats)
        for line in judged(flip_log.hold_note(verdict, "")["hold"], run.target, run.current):
            op.out(f"hold {line}")
        if run.waves:
            waves_seen.append(
                {"wave": i + 1, "edges": list(run.waves[i]), "verdict": verdict.outcome}
                | {"seen": seen}
                | ({"perEdge": verdict.edges} if verdict.edges else {})
            )
        if verdict.outcome != "held":
            what = "stop rule broken" if verdict.outcome == "breach" else "inconclusive"
            op.out(f"{what} {_during(step, run.wave)}: {verdict.reason}; rolling back")
            return {
                "phase": "rolled-back",
                "step": step,
                "verdict": verdict.outcome,
                "breach": verdict.reason,
                "seen": seen,
                **({"waveVerdicts": waves_seen} if run.waves else {}),
            }
        where = f"wave {run.wave}" if run.waves else f"{step}%"
        op.out(f"held {verdict.seconds:.1f} s at {where}: {json.dumps(seen)}")
        amend = flip_log.hold_note(verdict, "held")
        if run.waves:
            amend["waves"] = list(waves_seen)
        if step != run.steps[-1]:  # the last step's is the whole flip's (phase done)
            op.notify("flip", "held", {**run.fields, "step": step, "seen": seen})
    flip_id = run.fields["id"]
    op.annotate(amend, lambda record: record.get("flip") == flip_id)
    return {
        "phase": "done",
        "outcome": "ok",
        "seen": seen,
        **({"waveVerdicts": waves_seen} if run.waves else {}),
    }


def _put_back(op: Operator, run: _Flip, end: dict) -> dict:
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
        op.set_config(restore)
        if done:  # the flip finished: only the writes it froze are let through again
            op.ws.up(op.stack)
            return {}
        # It did not finish. A hold ran only after its step was applied: back at once, with
        # nothing read. Else what the edge serves now says whether any step was applied.
        served = run.served if "verdict" in end else op.outputs_now()
        moved = "verdict" in end or served.traffic != run.served.traffic
        if moved:
            what = "was interrupted" if end["phase"] == "interrupted" else "failed"
            reason = end.get("breach") or f"the flip to {run.target} {what}"
            reason += f" {_during(run.step, run.wave)}"
            back = run.current or run.before[POINTER] or other(run.target)
            amend = flip_log.hold_note(op.verdict, "rolled-back") if "verdict" in end else None
            if amend and end.get("waveVerdicts"):
                amend["waves"] = end["waveVerdicts"]
            ended = rolling_back.update_back(op, run.target, back, reason, served.url, amend=amend)
            if ended is Outcome.FAILED:
                return {"cleanup": "the rollback failed: see the rollback record"}
            return {}
        if served.maintenance != run.served.maintenance:
            op.ws.up(op.stack)
        op.out(f"the pointer stays at {run.current}: nothing was applied")
    except PulumiError as err:
        op.out(f"could not put the edge back as it was:\n{err}")
        return {"cleanup": err.summary}
    return {}


def _during(step: int | None, wave: int | None = None) -> str:
    if wave:
        return f"during wave {wave}"
    return f"during the {step}% step" if step else "before the first step"
