"""Hold and watch: live traffic per colour after a flip or canary step, judged by the gate's judge.

The numbers come from the edge stack's metrics source (cutover/sources/); the judge is the
policy pack's (policy/bluegreen_policy/judge.py), the one the gate before the flip uses, with the
edge stack's settings (`bluegreen:hold*`, read into `config.Hold`). The colour taking traffic is
compared with the other colour over the same seconds when that one still serves (a canary step),
else with the other colour's traffic before the flip (the baseline).

A hold ends in one of three verdicts: held (its time is up and the judge passes), breach (a
metric failed, or the edge routes around the colour: roll back at once) or inconclusive (too few
requests, or the judge still undecided when the hold has gone on to `bluegreen:holdMaxSeconds`).
Seeing nothing is never a pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from bluegreen_policy import judge as judging

from bluegreen.config import Hold, other
from cutover.sources.interface import ColorStats, MetricsSource, Stats

Outcome = Literal["held", "breach", "inconclusive"]


@dataclass
class Verdict:
    outcome: Outcome
    reason: str | None
    """Why, for a breach or an inconclusive hold, as a sentence."""
    stats: Stats
    seconds: float
    decision: judging.Decision | None = None
    """The judge's last decision, with every metric's finding (None: too little to judge)."""
    edges: dict[str, str] | None = None
    """Each edge's own verdict, where the hold judged edges apart (`parts`): "pass", "fail",
    "undecided" or "no data" (too few requests at that edge to judge it alone)."""

    @property
    def breach(self) -> str | None:
        return self.reason if self.outcome == "breach" else None


def tolerance(rules: Hold) -> judging.Tolerance:
    return judging.Tolerance(
        confidence=rules.confidence,
        latency_ratio=rules.latency_tolerance,
        latency_floor_ms=rules.latency_floor_ms,
        error_points=rules.error_tolerance,
    )


def scoring(rules: Hold) -> judging.Scoring:
    return judging.Scoring(
        rules=tuple(
            judging.Rule(m, m, 1.0, m in rules.critical, m in rules.dry_run)
            for m in judging.METRICS
        ),
        groups=dict(rules.weights),
        pass_score=rules.pass_score,
        marginal_score=rules.marginal_score,
    )


def compared(
    stats: Stats, target: str, weight: int, baseline: ColorStats | None, rules: Hold
) -> ColorStats:
    """What `target` is judged against: the other colour over the same seconds while it still
    takes traffic and has served enough, else the baseline (its traffic before the flip)."""
    now = stats.get(other(target), ColorStats())
    if weight < 100 and now.requests >= rules.min_requests:
        return now
    return baseline or ColorStats()


def judge(
    stats: Stats, target: str, weight: int, baseline: ColorStats | None, rules: Hold
) -> judging.Decision:
    """The judge's decision on `target` with these numbers."""
    s = stats.get(target, ColorStats())
    live = compared(stats, target, weight, baseline, rules)
    tol, score = tolerance(rules), scoring(rules)
    flags = {m: score.rule(m).flags for m in judging.METRICS}
    if s.latencies is not None and live.latencies is not None:
        latency = judging.latency(s.latencies, live.latencies, tol, **flags["latency"])
    else:  # a source without a distribution (CloudWatch): the p95 alone, said as such
        latency = judging.p95_only(s.p95_ms, s.requests, live.p95_ms, tol, **flags["latency"])
    errors = judging.errors(
        s.errors, s.requests, live.errors, live.requests, tol, **flags["errors"]
    )
    return judging.decide([latency, errors], score, target, other(target))


def routed_around(stats: Stats, target: str, weight: int, rules: Hold) -> str | None:
    """A colour the edge sends far less than its weight is failing: nginx retries its requests on
    the other colour (they count as its errors only when the source sees the attempts)."""
    s = stats.get(target, ColorStats())
    total = sum(x.requests for x in stats.values())
    if total >= rules.min_requests * 2 and weight > 0 and s.requests < total * weight / 100 / 3:
        return (
            f"{target} took {s.requests} of {total} requests while weighted {weight}%: "
            "the edge is routing around it (crashed or failing)"
        )
    return None


def too_little(stats: Stats, target: str, rules: Hold) -> str | None:
    """Why these numbers cannot judge `target`, or None when they can."""
    seen = stats.get(target, ColorStats()).requests
    if seen >= rules.min_requests:
        return None
    return (
        f"{target} served {seen} request{'s' if seen != 1 else ''} in the hold, fewer than the "
        f"{rules.min_requests} needed to judge it (bluegreen:holdMinRequests); "
        "no data is not a pass"
    )


def edge_breach(
    parts: Mapping[str, MetricsSource],
    found: dict[str, str],
    target: str,
    weight: int,
    baseline: ColorStats | None,
    rules: Hold,
) -> str | None:
    """Judge each edge's own traffic (a wave's edges, each against the same baseline), noting
    each edge's verdict in `found`; why one failed, or None. An edge with too few requests to be
    judged alone is "no data", never a pass: the wave's traffic together still has to pass."""
    for site, part in parts.items():
        stats = part.read()
        routed = routed_around(stats, target, weight, rules)
        if routed:
            found[site] = "fail"
            return f"at edge {site}: {routed}"
        if too_little(stats, target, rules) is not None:
            found[site] = "no data"
            continue
        decision = judge(stats, target, weight, baseline, rules)
        found[site] = {"pass": "pass", "fail": "fail"}.get(decision.outcome, "undecided")
        if decision.outcome == "fail":
            return f"at edge {site}: {decision.reason}"
    return None


Check = Callable[[Stats, float, float], None]
"""Called after each check with the figures so far, the seconds held and the seconds left."""


def hold(
    source: MetricsSource,
    target: str,
    weight: int,
    baseline: ColorStats | None,
    seconds: float,
    interval: float,
    rules: Hold,
    keep_holding: bool = False,
    on_check: Check | None = None,
    parts: Mapping[str, MetricsSource] | None = None,
) -> Verdict:
    """Watch for `seconds`, checking every `interval`; stop at the first failed metric. When the
    time is up, a pass holds; a judge still undecided goes on checking up to `rules.max_s` in all,
    then the hold is inconclusive. Too little traffic by the end is inconclusive too, or with
    `keep_holding` the hold waits for it. The source counts from when `hold` starts.
    `parts`: each edge's own traffic, judged apart as well (`edge_breach`)."""
    parts = parts or {}
    for part in (source, *parts.values()):
        part.start()
    found: dict[str, str] = {}
    start = time.monotonic()

    def verdict(outcome: Outcome, why: str | None) -> Verdict:
        return Verdict(outcome, why, stats, elapsed, decision, dict(found) if parts else None)

    cap = max(seconds, float(rules.max_s))
    decision: judging.Decision | None = None
    while True:
        left = seconds - (time.monotonic() - start)
        time.sleep(min(interval, left) if left > 0 else interval)
        stats = source.read()
        elapsed = time.monotonic() - start
        if on_check:
            on_check(stats, elapsed, max(0.0, seconds - elapsed))
        routed = routed_around(stats, target, weight, rules)
        routed = routed or edge_breach(parts, found, target, weight, baseline, rules)
        if routed:
            return verdict("breach", routed)
        few = too_little(stats, target, rules)
        if few is None:
            decision = judge(stats, target, weight, baseline, rules)
            if decision.outcome == "fail":
                return verdict("breach", decision.reason)
        if elapsed < seconds:
            continue
        if decision is not None and few is None and decision.outcome == "pass":
            return verdict("held", None)
        if few is not None and keep_holding or few is None and elapsed < cap:
            continue
        why = few or (
            f"still undecided after {elapsed:.0f} s (bluegreen:holdMaxSeconds {rules.max_s}): "
            f"{decision.reason if decision else 'nothing judged'}; not decided is not a pass"
        )
        return verdict("inconclusive", why)


def judged(figures: Mapping | None, target: str, live: str | None) -> list[str]:
    """The judge's findings in a gate's figures or a hold's note, one sentence each."""
    decision = (figures or {}).get("judge") or {}
    found = [judging.Finding.from_record(f) for f in decision.get("findings") or []]
    return [f.sentence(target, live or other(target)) for f in found]
