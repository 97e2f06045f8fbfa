"""The judge: is the arm taking traffic worse than the arm it is compared with, beyond a tolerance?

One judge for the gate before a flip (the pack's smoke test, on requests it sends to both arms)
and the hold after it (the `bluegreen` command, on what the metrics source saw per colour; the
command imports this module, the only one of the pack it uses).

Each metric gets a verdict from a statistical test, never from one noisy percentile:

- **latency**: the shift of the target's latencies against the live arm's, estimated by
  Hodges-Lehmann (the shift that centres the Mann-Whitney U statistic), with the confidence
  interval that inverts the same test (`scipy.stats.mannwhitneyu`, normal approximation with the
  tie correction). The tolerance is a share of the live arm's median (15 % by default), never
  less than a floor in milliseconds.
- **errors**: the difference of the two error rates, with Newcombe's interval built from the
  Wilson interval of each rate (`scipy.stats.binomtest(...).proportion_ci`). The tolerance is
  the increase allowed, in points (0.5 % by default).
- **p95** (a source with no latency distribution, such as CloudWatch): the target's p95 against
  the live arm's times (1 + tolerance). A point comparison, said as such.

A metric passes when the whole interval lies within the tolerance, fails when the whole interval
lies beyond it, and is otherwise not yet decided: the caller takes more requests (the gate) or
more checks (the hold), up to its limit, where an undecided run is inconclusive. A metric the
target has no data for is "nodata", never a pass.

`decide` weighs the findings the way Kayenta scores a canary: metrics in groups with weights, a
critical metric that fails decides alone, dry-run metrics are computed and shown but decide
nothing, half the metrics without data fail the run, and a score between the marginal and the
pass threshold is not yet decided.

scipy is imported on first use: the pack is loaded by every preview and update, most of which
compare nothing.

One module, over 350 lines, on purpose: the tooling may import this module of the pack and no
other (tests/unit/test_layers.py), so the whole judge is here: the tolerances, the three tests,
the findings they make and the verdict of a run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

Verdict = Literal["pass", "fail", "undecided", "nodata"]
Outcome = Literal["pass", "fail", "undecided"]
METRICS = ("latency", "errors")
"""What the judge compares: every source offers these per colour."""
MAX_POINTS = 4000
"""Latencies kept per side: a larger set is thinned to this many evenly spaced order statistics
(its shape kept, its count lowered, which only widens the interval)."""


@dataclass(frozen=True)
class Tolerance:
    confidence: float = 0.95
    """Of each interval, two-sided: a bound is wrong at most (1 - confidence) / 2 of the time."""
    latency_ratio: float = 0.15
    """Latency shift allowed, as a share of the live arm's median (p95 within +15%, the
    reference's target, read as a shift of the whole distribution)."""
    latency_floor_ms: float = 0.5
    """The least shift allowed, in ms. Two processes of the same build on one host differ by a
    tenth or two of a millisecond (where the scheduler puts them, whose caches are warm): at a
    sub-millisecond median that is more than 15%, and no reason to refuse a release."""
    error_points: float = 0.005
    """Error-rate increase allowed over the live arm (0.005 is half a point)."""


@dataclass(frozen=True)
class Finding:
    """One metric's verdict with the figures a reviewer weighs it by."""

    metric: str
    verdict: Verdict
    estimate: float | None = None
    """The target minus the live arm: ms of latency shift, or a difference of error rates."""
    low: float | None = None
    high: float | None = None
    tolerance: float | None = None
    confidence: float = 0.95
    target_n: int = 0
    live_n: int = 0
    target_value: float | None = None
    """The target's median (ms), error rate or p95 (ms)."""
    live_value: float | None = None
    basis: str = ""
    """How it was judged: "rank test", "two proportions", "p95 only", "no baseline"."""
    dry_run: bool = False
    critical: bool = False

    def record(self) -> dict:
        """The finding for the evidence and the flip log: plain JSON, rounded."""
        out = {}
        for k, v in asdict(self).items():
            key = "".join(w.capitalize() if i else w for i, w in enumerate(k.split("_")))
            out[key] = round(v, 6) if isinstance(v, float) else v
        return out

    @staticmethod
    def from_record(r: Mapping) -> Finding:
        names = {
            f: "".join(w.capitalize() if i else w for i, w in enumerate(f.split("_")))
            for f in Finding.__dataclass_fields__
        }
        return Finding(**{f: r[k] for f, k in names.items() if k in r})

    def sentence(self, target: str, live: str) -> str:
        """What a reviewer reads: the difference, its interval, the tolerance and the sample."""
        mark = " [dry run]" if self.dry_run else ""
        level = f"{self.confidence:.0%}"
        each = f"over {self.target_n} and {self.live_n} requests"
        if self.target_n == self.live_n:
            each = f"over {self.target_n} requests each"
        if self.verdict == "nodata":
            return f"{self.metric}: no data for {target} ({self.basis or 'nothing served'}){mark}"
        if self.basis == "no baseline":
            return (
                f"{self.metric}: not judged, {live} has no figures to compare {target} with{mark}"
            )
        if self.metric == "latency" and self.basis == "p95 only":
            return (
                f"{self.metric}: {target} p95 {_ms(self.target_value or 0)} ms against {live} "
                f"{_ms(self.live_value or 0)} ms (tolerance +{_ms(self.tolerance or 0)} ms; "
                f"p95 only, the source gives no distribution) over {self.target_n} requests: "
                f"{_word(self.verdict)}{mark}"
            )
        if self.metric == "latency":
            e, lo, hi = self.estimate or 0.0, self.low or 0.0, self.high or 0.0
            way = "slower" if e > 0 else "faster"
            return (
                f"{self.metric}: {target} is {way} than {live} by {_ms(abs(e))} ms at the median "
                f"({level} CI {_ms(lo)} to {_ms(hi)} ms; tolerance {_ms(self.tolerance or 0)} ms) "
                f"{each}: "
                f"{_word(self.verdict)}{mark}"
            )
        t, lv = self.target_value or 0.0, self.live_value or 0.0
        e, lo, hi = (x * 100 for x in (self.estimate or 0.0, self.low or 0.0, self.high or 0.0))
        if self.basis == "against zero":
            return (
                f"{self.metric}: {target} {t:.2%} ({level} CI {max(lo, 0):.2f}% to {hi:.2f}%; "
                f"tolerance {(self.tolerance or 0) * 100:.2f}%) over {self.target_n} requests, "
                f"with nothing of {live}'s to compare: {_word(self.verdict)}{mark}"
            )
        return (
            f"{self.metric}: {target} {t:.2%} against {live} {lv:.2%}, a difference of "
            f"{e:+.2f} points ({level} CI {lo:+.2f} to {hi:+.2f}; tolerance "
            f"{(self.tolerance or 0) * 100:.2f}) {each}: {_word(self.verdict)}{mark}"
        )


def _ms(value: float) -> str:
    """Milliseconds to the precision a reader can use: 0.42, 6.1, 130."""
    return (
        f"{value:.2f}"
        if abs(value) < 10
        else f"{value:.1f}"
        if abs(value) < 100
        else f"{value:.0f}"
    )


def _word(verdict: Verdict) -> str:
    return {"pass": "pass", "fail": "FAIL", "undecided": "not yet decided", "nodata": "no data"}[
        verdict
    ]


def _against(low: float, high: float, tolerance: float) -> Verdict:
    if low > tolerance:
        return "fail"
    if high <= tolerance:
        return "pass"
    return "undecided"


def from_histogram(cumulative: Iterable[tuple[float, float]]) -> list[float]:
    """Values standing for the observations of a cumulative histogram ((upper bound, count so
    far) pairs, as Prometheus's `le` buckets): each bucket's observations spread evenly across it,
    as histogram_quantile assumes; the +Inf bucket's sit at the highest finite bound."""
    values: list[float] = []
    lower, below = 0.0, 0.0
    for bound, count in sorted(cumulative):
        n = round(count - below)
        if n > 0:
            top = bound if math.isfinite(bound) else lower
            values.extend(lower + (top - lower) * (i + 0.5) / n for i in range(n))
        below = max(below, count)
        lower = bound if math.isfinite(bound) else lower
    return values


def _thin(values: Sequence[float]):
    import numpy as np

    data = np.sort(np.asarray(values, dtype=float))
    if len(data) > MAX_POINTS:
        data = data[np.linspace(0, len(data) - 1, MAX_POINTS).round().astype(int)]
    return data


def latency(
    target_ms: Sequence[float], live_ms: Sequence[float], tol: Tolerance, **rule
) -> Finding:
    """The target's latency shift against the live arm's (both in ms, one value a request)."""
    if len(target_ms) == 0:
        return Finding("latency", "nodata", basis="no latencies", **rule)
    if len(live_ms) == 0:
        return Finding(
            "latency",
            "undecided",
            basis="no baseline",
            target_n=len(target_ms),
            confidence=tol.confidence,
            **rule,
        )
    import numpy as np
    from scipy.stats import mannwhitneyu

    x, y = _thin(target_ms), _thin(live_ms)
    alpha = (1 - tol.confidence) / 2

    def p(shift: float, alternative: str) -> float:
        return float(
            mannwhitneyu(x - shift, y, alternative=alternative, method="asymptotic").pvalue
        )

    def u_share(shift: float) -> float:
        u = mannwhitneyu(x - shift, y, method="asymptotic").statistic
        return float(u) / (len(x) * len(y))

    lo_end, hi_end = float(x[0] - y[-1]), float(x[-1] - y[0])
    resolution = max(1e-4, (hi_end - lo_end) * 1e-6)

    def first(pred, lo: float, hi: float) -> float:
        """The least shift in [lo, hi] where `pred` turns true (pred is monotone)."""
        while hi - lo > resolution:
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if pred(mid) else (mid, hi)
        return (lo + hi) / 2

    # Shifting the target down by more makes it look faster: p(greater) rises with the shift.
    low = first(lambda s: p(s, "greater") >= alpha, lo_end, hi_end)
    high = first(lambda s: p(s, "less") < alpha, lo_end, hi_end)
    estimate = first(lambda s: u_share(s) <= 0.5, lo_end, hi_end)
    live_median = float(np.median(y))
    tolerance = max(tol.latency_ratio * live_median, tol.latency_floor_ms)
    if p(tolerance, "greater") < alpha:
        verdict: Verdict = "fail"
    elif p(tolerance, "less") < alpha:
        verdict = "pass"
    else:
        verdict = "undecided"
    return Finding(
        "latency",
        verdict,
        estimate=estimate,
        low=min(low, high),
        high=max(low, high),
        tolerance=tolerance,
        confidence=tol.confidence,
        target_n=len(target_ms),
        live_n=len(live_ms),
        target_value=float(np.median(x)),
        live_value=live_median,
        basis="rank test",
        **rule,
    )


def _wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def errors(
    target_errors: int, target_n: int, live_errors: int, live_n: int, tol: Tolerance, **rule
) -> Finding:
    """The target's error rate against the live arm's: Newcombe's interval of the difference.
    With no live figures (nothing to compare), the target's rate is judged against zero."""
    if target_n <= 0:
        return Finding("errors", "nodata", basis="no requests", **rule)
    p1 = target_errors / target_n
    l1, u1 = _wilson(target_errors, target_n, tol.confidence)
    if live_n > 0:
        p2 = live_errors / live_n
        l2, u2 = _wilson(live_errors, live_n, tol.confidence)
    else:
        p2, l2, u2 = 0.0, 0.0, 0.0
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Finding(
        "errors",
        _against(low, high, tol.error_points),
        estimate=d,
        low=low,
        high=high,
        tolerance=tol.error_points,
        confidence=tol.confidence,
        target_n=target_n,
        live_n=live_n,
        target_value=p1,
        live_value=p2,
        basis="two proportions" if live_n > 0 else "against zero",
        **rule,
    )


def p95_only(
    target_p95: float | None, target_n: int, live_p95: float | None, tol: Tolerance, **rule
) -> Finding:
    """A source that gives a p95 and no distribution: the target's p95 against the live arm's
    times (1 + ratio), at least the floor above it. A point comparison, shown as such."""
    if target_p95 is None or target_n <= 0:
        return Finding("latency", "nodata", basis="no latencies", **rule)
    if live_p95 is None:
        return Finding("latency", "undecided", basis="no baseline", target_n=target_n, **rule)
    tolerance = max(tol.latency_ratio * live_p95, tol.latency_floor_ms)
    d = target_p95 - live_p95
    return Finding(
        "latency",
        "fail" if d > tolerance else "pass",
        estimate=d,
        tolerance=tolerance,
        confidence=tol.confidence,
        target_n=target_n,
        target_value=target_p95,
        live_value=live_p95,
        basis="p95 only",
        **rule,
    )


# --- the verdict of a run -----------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """How one metric counts: its group, its weight in the group, critical, dry run."""

    metric: str
    group: str = ""
    weight: float = 1.0
    critical: bool = True
    dry_run: bool = False

    @property
    def flags(self) -> dict:
        return {"critical": self.critical, "dry_run": self.dry_run}


@dataclass(frozen=True)
class Scoring:
    rules: tuple[Rule, ...] = (Rule("latency", "latency"), Rule("errors", "errors"))
    groups: Mapping[str, float] = field(default_factory=lambda: {"latency": 50, "errors": 50})
    pass_score: float = 95.0
    marginal_score: float = 75.0

    def rule(self, metric: str) -> Rule:
        return next((r for r in self.rules if r.metric == metric), Rule(metric, metric))


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    """One sentence: what decided, or what is still open."""
    findings: tuple[Finding, ...]
    score: float | None = None

    def lines(self, target: str, live: str) -> list[str]:
        return [f.sentence(target, live) for f in self.findings]

    def record(self) -> dict:
        return {
            "outcome": self.outcome,
            "score": None if self.score is None else round(self.score, 1),
            "findings": [f.record() for f in self.findings],
        }


def decide(findings: Iterable[Finding], scoring: Scoring, target: str, live: str) -> Decision:
    """The run's outcome from its metrics' findings (dry-run findings are kept, never counted)."""
    found = tuple(findings)
    # Dry runs decide nothing; a metric with nothing to compare with (the other colour served
    # nothing before a flip) is shown as such and cannot decide either.
    counted = [f for f in found if not f.dry_run and f.basis != "no baseline"]
    if not counted:
        return Decision("fail", "every metric is a dry run: nothing decides", found)

    def say(f: Finding) -> str:
        return f.sentence(target, live)

    for f in counted:  # a failure says more than a missing figure: it goes first
        if f.critical and f.verdict == "fail":
            return Decision("fail", say(f), found)
    nodata = [f for f in counted if f.verdict == "nodata"]
    if len(nodata) * 2 >= len(counted):
        return Decision("fail", f"no data is not a pass: {say(nodata[0])}", found)
    for f in counted:
        if f.critical and f.verdict == "nodata":
            return Decision("fail", say(f), found)
    # Each group scores the share of its metrics that passed (by weight); the run, the groups'
    # weighted mean. Undecided metrics count as passes for the best score still possible.
    best, now, total = 0.0, 0.0, 0.0
    for group, weight in scoring.groups.items():
        members = [
            (f, scoring.rule(f.metric).weight)
            for f in counted
            if (scoring.rule(f.metric).group or f.metric) == group
        ]
        size = sum(w for _, w in members)
        if not size:
            continue
        total += weight
        now += weight * sum(w for f, w in members if f.verdict == "pass") / size
        best += weight * sum(w for f, w in members if f.verdict in ("pass", "undecided")) / size
    score = 100 * now / total if total else 0.0
    best_score = 100 * best / total if total else 0.0
    failed = [f for f in counted if f.verdict in ("fail", "nodata")]
    if best_score < scoring.marginal_score:
        why = say(failed[0]) if failed else "too few metrics can pass"
        return Decision(
            "fail", f"score {best_score:.0f} below {scoring.marginal_score:g}: {why}", found, score
        )
    open_ = [f for f in counted if f.verdict == "undecided"]
    if open_:
        return Decision("undecided", say(open_[0]), found, score)
    if score >= scoring.pass_score:
        return Decision("pass", f"score {score:.0f}", found, score)
    if score >= scoring.marginal_score:
        return Decision(
            "undecided",
            f"score {score:.0f} is marginal (pass at {scoring.pass_score:g})",
            found,
            score,
        )
    return Decision("fail", f"score {score:.0f} below {scoring.marginal_score:g}", found, score)


def schedule(first: int, cap: int) -> list[int]:
    """How many requests each arm has by each look: doubling from `first` up to `cap`."""
    looks, n = [], first
    while n < cap:
        looks.append(n)
        n *= 2
    return [*looks, cap]
