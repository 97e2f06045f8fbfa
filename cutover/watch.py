"""Hold and watch: live traffic per colour after a flip or canary step, against stop rules.

The numbers come from the edge stack's metrics source (cutover/metrics.py). The stop rules are
the edge stack's (`bluegreen:hold*`, read into `config.Hold`). A hold ends in one of three
verdicts: held (enough traffic, no rule broken), breach (a rule broken: roll back) or inconclusive
(the colour taking traffic served too few requests to judge). Seeing nothing is never a pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bluegreen.config import Hold
from cutover.metrics import ColorStats, MetricsSource, Stats

Outcome = Literal["held", "breach", "inconclusive"]


@dataclass
class Verdict:
    outcome: Outcome
    reason: str | None
    """Why, for a breach or an inconclusive hold, as a sentence."""
    stats: Stats
    seconds: float

    @property
    def breach(self) -> str | None:
        return self.reason if self.outcome == "breach" else None


def judge(
    stats: Stats, target: str, weight: int, baseline_p95: float | None, rules: Hold
) -> str | None:
    """The first stop rule `target` breaks with these numbers, as a sentence, or None."""
    s = stats.get(target, ColorStats())
    total = sum(x.requests for x in stats.values())
    if s.requests >= rules.min_requests and s.error_rate > rules.max_error_rate:
        return (
            f"{target} answered {s.errors} of {s.requests} requests with 5xx or not at all "
            f"({s.error_rate:.1%} > {rules.max_error_rate:.1%})"
        )
    if total >= rules.min_requests * 2 and weight > 0 and s.requests < total * weight / 100 / 3:
        return (
            f"{target} took {s.requests} of {total} requests while weighted {weight}%: "
            "the edge is routing around it (crashed or failing)"
        )
    if baseline_p95 and s.p95_ms is not None and s.requests >= rules.min_requests:
        limit = max(baseline_p95 * rules.p95_ratio, baseline_p95 + rules.p95_allowance_ms)
        if s.p95_ms > limit:
            return (
                f"{target} p95 {s.p95_ms:.1f} ms exceeds {rules.p95_ratio:g} x the pre-flip "
                f"baseline ({baseline_p95:.1f} ms)"
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


Check = Callable[[Stats, float, float], None]
"""Called after each check with the figures so far, the seconds held and the seconds left."""


def hold(
    source: MetricsSource,
    target: str,
    weight: int,
    baseline_p95: float | None,
    seconds: float,
    interval: float,
    rules: Hold,
    keep_holding: bool = False,
    on_check: Check | None = None,
) -> Verdict:
    """Watch for `seconds`, checking every `interval`; stop at the first breach. Too little traffic
    by the end is inconclusive, or with `keep_holding` the hold goes on until it can judge.
    The source counts from when `hold` starts."""
    source.start()
    start = time.monotonic()
    while True:
        left = seconds - (time.monotonic() - start)
        time.sleep(min(interval, left) if left > 0 else interval)
        stats = source.read()
        elapsed = time.monotonic() - start
        breach = judge(stats, target, weight, baseline_p95, rules)
        if on_check:
            on_check(stats, elapsed, max(0.0, seconds - elapsed))
        if breach:
            return Verdict("breach", breach, stats, elapsed)
        if elapsed >= seconds:
            why = too_little(stats, target, rules)
            if why is None:
                return Verdict("held", None, stats, elapsed)
            if not keep_holding:
                return Verdict("inconclusive", why, stats, elapsed)
