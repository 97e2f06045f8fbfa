"""`bluegreen watch`: hold and watch the colour taking traffic now, as CI does after an update
that moved it (cutover/ci.py); roll back on a breach or an inconclusive hold."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bluegreen import config
from bluegreen.config import COLORS, other
from bluegreen.live_stack import LiveOutputs, Traffic
from cutover import flip_log, rolling_back
from cutover.results import Outcome, Report
from cutover.sources.interface import Unreachable

if TYPE_CHECKING:
    from cutover.operator import Operator


def watch(
    op: Operator,
    hold_s: float,
    interval: float = 1.0,
    rules: config.Hold | None = None,
    live: LiveOutputs | None = None,
) -> Report:
    """Hold and watch the colour taking traffic now (`live`: the edge's outputs, if the
    caller has just read them); roll back on a breach or an inconclusive hold."""
    rules = rules or op.edge.hold
    live = live if live is not None else op.live()
    color = live.active_color
    if color not in COLORS:
        op.out("watch: the live stack has no active colour yet; nothing to watch")
        return Report(Outcome.NOT_READY, "the live stack has no active colour yet")
    weight = (live.weights or {}).get(color, 100)
    try:
        source = op.source(live, op.arms())
    except Unreachable as err:
        op.out(f"watch: cannot watch {color}: {err}")
        return Report(Outcome.UNREACHABLE, str(err))
    baseline = op.baseline(source, other(color))
    op.out(f"watching {color} at {weight}% for {hold_s:g} s through {source.describe}")
    verdict = op.hold(source, color, weight, baseline, hold_s, interval, rules)
    seen = flip_log.seen(verdict.stats)
    if verdict.outcome != "held":
        what = "stop rule broken" if verdict.outcome == "breach" else "inconclusive"
        op.out(f"{what}: {verdict.reason}; rolling back")
        op.set_config(op.pointer(other(color), None))
        ended = rolling_back.update_back(
            op,
            color,
            other(color),
            str(verdict.reason),
            live.url,
            amend=flip_log.hold_note(verdict, "rolled-back"),
        )
        back = {"from": color, "to": other(color), "reason": verdict.reason, "seen": seen}
        failed = ended is Outcome.FAILED
        op.notify("watch", "failed" if failed else "rolled-back", back)
        return Report(Outcome.FAILED if failed else Outcome.ROLLED_BACK, verdict.reason, verdict)
    op.out(f"held {verdict.seconds:.1f} s: {json.dumps(seen)}")
    watched = live.traffic
    op.annotate(
        flip_log.hold_note(verdict, "held"),
        lambda record: Traffic.from_outputs(record.get("to")) == watched,
    )
    op.notify("watch", "held", {"to": color, "step": weight, "seen": seen})
    return Report(Outcome.DONE, verdict=verdict)
