"""The settings of the hold after a flip (bluegreen:hold*): how its judge compares the colours'
live traffic before the flip stands or is rolled back."""

from __future__ import annotations

from dataclasses import dataclass

from bluegreen.reader import Reader

HOLD_METRICS = ("latency", "errors")
"""What the hold's judge compares per colour (the policy pack's judge.METRICS)."""


@dataclass(frozen=True)
class Hold:
    """The hold's judge after a flip (the policy pack's judge.py, fed live traffic): a metric that
    fails rolls back, and so does a hold still undecided at `max_s` (inconclusive)."""

    confidence: float
    latency_tolerance: float
    """A share of the compared colour's median latency."""
    latency_floor_ms: float
    error_tolerance: float
    """Error-rate increase allowed over the compared colour (0.01 is one point)."""
    min_requests: int
    max_s: int
    """How long a hold still undecided when its time is up may go on checking, in all."""
    critical: tuple[str, ...] = HOLD_METRICS
    dry_run: tuple[str, ...] = ()
    weights: tuple[tuple[str, float], ...] = (("latency", 50.0), ("errors", 50.0))
    pass_score: int = 95
    marginal_score: int = 75


def _metric_names(read: Reader, key: str) -> tuple[str, ...]:
    raw = read.declared(key)
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    if any(n not in HOLD_METRICS for n in names) or len(set(names)) != len(names):
        read.problem(key, raw, f"metric names separated by commas, of {', '.join(HOLD_METRICS)}")
        return ()
    return names


def _metric_weights(read: Reader) -> tuple[tuple[str, float], ...]:
    raw = read.declared("holdWeights")
    found: dict[str, float] = {}
    for part in raw.split(","):
        name, _, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if name.strip() not in HOLD_METRICS or name.strip() in found or not 0 < weight <= 1000:
            read.problem(
                "holdWeights",
                raw,
                'each metric once with a weight above 0, e.g. "latency=50,errors=50"',
            )
            return (("latency", 50.0), ("errors", 50.0))
        found[name.strip()] = weight
    return tuple(found.items())


REPLACED = {
    "holdMaxErrorRate": "holdErrorTolerance",
    "holdP95Ratio": "holdLatencyTolerance",
    "holdP95AllowanceMs": "holdLatencyFloorMs",
}
"""The p95 hold's keys, and the judge's that replaced them: a stack still setting one is told."""


def read_hold(read: Reader) -> Hold:
    for old, new in REPLACED.items():
        value = read.optional(old)
        if value is not None:
            read.problem(old, value, f"unset: the hold's judge replaced it with bluegreen:{new}")
    dry = _metric_names(read, "holdDryRun")
    if set(dry) == set(HOLD_METRICS):
        read.problem(
            "holdDryRun",
            read.declared("holdDryRun"),
            "at most one of latency, errors: "
            "a hold where every metric is a dry run decides nothing",
        )
    pass_score = read.integer("holdPassScore", 1, 100)
    marginal = read.integer("holdMarginalScore", 0, 100)
    if marginal > pass_score:
        read.problem(
            "holdMarginalScore", marginal, f"at most bluegreen:holdPassScore ({pass_score})"
        )
    return Hold(
        confidence=read.number("holdConfidence", 0.8, 0.999),
        latency_tolerance=read.number("holdLatencyTolerance", 0.0, 10.0),
        latency_floor_ms=read.number("holdLatencyFloorMs", 0.0, 10000.0),
        error_tolerance=read.number("holdErrorTolerance", 0.0, 0.5),
        min_requests=read.integer("holdMinRequests", 1, 1_000_000),
        max_s=read.integer("holdMaxSeconds", 1, 86400),
        critical=_metric_names(read, "holdCritical"),
        dry_run=dry,
        weights=_metric_weights(read),
        pass_score=pass_score,
        marginal_score=marginal,
    )
