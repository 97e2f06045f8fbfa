"""`bluegreen shadow`: judge the idle colour on the live requests the edge mirrors to it
(bluegreen:shadow), before anyone is moved; a flip runs it first when the edge mirrors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bluegreen import config
from bluegreen.config import COLORS, other
from bluegreen.live_stack import ArmOutputs, LiveOutputs
from cutover import flip_log
from cutover.results import Outcome, Report
from cutover.sources.interface import Unreachable

if TYPE_CHECKING:
    from cutover.operator import Operator


def shadow(
    op: Operator,
    hold_s: float,
    interval: float = 1.0,
    rules: config.Hold | None = None,
    live: LiveOutputs | None = None,
    arms: Mapping[str, ArmOutputs] | None = None,
) -> Report:
    """Before anyone is moved: judge the idle arm on the live requests the edge mirrors to it
    (bluegreen:shadow), by the hold's judge against the live arm over the same seconds. DONE
    when it held; a breach, or too little shadow traffic to judge, is NOT_HELD."""
    rules = rules or op.edge.hold
    live = live if live is not None else op.live()
    color = live.active_color
    if color not in COLORS or live.weight(color) != 100:
        op.out(
            "shadow: needs one colour taking all traffic (no canary step in progress); "
            f"the edge serves {json.dumps(live.weights or {})}"
        )
        return Report(Outcome.NOT_READY, "no one colour takes all traffic")
    idle, percent = other(color), live.shadow
    if not percent:
        op.out(
            f"shadow: the edge of stack {op.stack} mirrors nothing to {idle}: set "
            f"bluegreen:shadow (percent of live requests, e.g. 10) in its config and run "
            f"pulumi up -s {op.stack}"
        )
        return Report(Outcome.NOT_READY, f"the edge mirrors nothing to {idle}")
    try:
        source = op.source(live, arms if arms is not None else op.arms())
    except Unreachable as err:
        op.out(f"shadow: cannot compare {idle}: {err}")
        return Report(Outcome.UNREACHABLE, str(err))
    baseline = op.baseline(source, color)
    op.out(
        f"shadow: judging {idle} on {percent}% of live requests, mirrored, against {color} "
        f"for {hold_s:g} s through {source.describe}"
    )
    verdict = op.hold(source, idle, 0, baseline, hold_s, interval, rules)
    seen = flip_log.seen(verdict.stats)
    op.log.record(event="shadow", phase=verdict.outcome, to=idle, seen=seen, reason=verdict.reason)
    if verdict.outcome != "held":
        op.out(f"shadow: {idle} is not ready for users: {verdict.reason}")
        op.notify("shadow", verdict.outcome, {"to": idle, "reason": verdict.reason, "seen": seen})
        return Report(Outcome.NOT_HELD, verdict.reason, verdict)
    op.out(
        f"shadow: {idle} held on mirrored traffic for {verdict.seconds:.1f} s: {json.dumps(seen)}"
    )
    return Report(Outcome.DONE, verdict=verdict)
