"""The judge the gate and the hold share (policy/bluegreen_policy/judge.py), on samples drawn here
with a fixed seed: each verdict, dry runs, critical metrics, groups and scores, no data."""

from __future__ import annotations

import re

import numpy as np
import pytest
from bluegreen_policy import judge

TOL = judge.Tolerance()  # 95%, latency within 15% of the live median (0.5 ms at least), +0.5 pt


def latencies(n: int, median_ms: float, seed: int) -> np.ndarray:
    """A loopback service's latencies: a floor and a long right tail, median about `median_ms`."""
    rng = np.random.default_rng(seed)
    return median_ms * 0.7 + rng.exponential(median_ms * 0.3 / np.log(2), n)


def test_an_identical_arm_passes_latency_with_the_shift_and_its_interval():
    f = judge.latency(latencies(800, 5, 1), latencies(800, 5, 2), TOL)
    assert f.verdict == "pass"
    assert f.low < f.estimate < f.high and f.low < 0 < f.high
    assert f.tolerance == pytest.approx(0.15 * f.live_value)
    assert (f.target_n, f.live_n, f.basis) == (800, 800, "rank test")


def test_a_twenty_percent_slower_arm_fails_latency():
    slow = latencies(3200, 5, 3) * 1.2
    f = judge.latency(slow, latencies(3200, 5, 4), TOL)
    assert f.verdict == "fail" and f.low > f.tolerance
    assert f.estimate == pytest.approx(1.0, abs=0.25)  # 20% of a 5 ms median


def test_a_small_sample_of_an_arm_near_the_tolerance_is_not_yet_decided():
    f = judge.latency(latencies(60, 5, 5) * 1.15, latencies(60, 5, 6), TOL)
    assert f.verdict == "undecided" and f.low <= f.tolerance < f.high


def test_the_floor_keeps_a_sub_millisecond_service_from_failing_on_timer_noise():
    f = judge.latency(latencies(800, 0.6, 7) + 0.15, latencies(800, 0.6, 8), TOL)
    assert f.tolerance == pytest.approx(0.5) and f.verdict == "pass"
    assert f.low > 0  # really slower, by a quarter: a measured difference, not a refusal


def test_the_message_gives_the_shift_its_interval_the_tolerance_and_the_sample():
    f = judge.latency(latencies(600, 30, 9) + 6, latencies(600, 30, 10), TOL)
    text = f.sentence("green", "blue")
    assert text.startswith("latency: green is slower than blue by ")
    assert re.search(
        r" ms at the median \(95% CI [\d.]+ to [\d.]+ ms; tolerance 4\.\d\d ms\) "
        r"over 600 requests each: FAIL$",
        text,
    ), text


@pytest.mark.parametrize(
    ("errors", "n", "verdict"),
    [(40, 2000, "fail"), (2, 3200, "pass"), (0, 1100, "pass"), (1, 300, "undecided")],
)
def test_errors_are_two_proportions_against_the_live_arm(errors, n, verdict):
    f = judge.errors(errors, n, 0, n, TOL)
    assert f.verdict == verdict, f.sentence("green", "blue")
    assert f.low <= f.estimate <= f.high and f.basis == "two proportions"


def test_an_arm_as_bad_as_the_live_one_passes_errors_an_increase_fails():
    assert judge.errors(100, 10000, 100, 10000, TOL).verdict == "pass"
    assert judge.errors(300, 10000, 100, 10000, TOL).verdict == "fail"


def test_no_requests_is_no_data_never_a_pass():
    assert judge.errors(0, 0, 0, 500, TOL).verdict == "nodata"
    assert judge.latency([], latencies(100, 5, 1), TOL).verdict == "nodata"
    decision = judge.decide(
        [judge.latency([], [1.0], TOL), judge.errors(0, 0, 0, 10, TOL)], judge.Scoring(), "g", "b"
    )
    assert decision.outcome == "fail" and decision.reason.startswith("no data is not a pass")


def finding(metric: str, verdict: str, **flags) -> judge.Finding:
    return judge.Finding(metric, verdict, estimate=0.0, low=0.0, high=0.0, tolerance=1.0, **flags)


def scoring(**changes) -> judge.Scoring:
    rules = tuple(
        judge.Rule(m, m, 1.0, changes.pop(f"{m}_critical", True), changes.pop(f"{m}_dry", False))
        for m in judge.METRICS
    )
    return judge.Scoring(rules=rules, **changes)


def decide(latency: str, errors: str, s: judge.Scoring | None = None, **flags) -> judge.Decision:
    s = s or judge.Scoring()
    found = [
        finding("latency", latency, **s.rule("latency").flags),
        finding("errors", errors, **s.rule("errors").flags),
    ]
    return judge.decide(found, s, "green", "blue")


def test_a_critical_failure_decides_alone_and_an_open_metric_keeps_sampling():
    assert decide("pass", "pass").outcome == "pass"
    assert decide("fail", "undecided").outcome == "fail"
    assert decide("pass", "undecided").outcome == "undecided"


def test_a_dry_run_metric_is_judged_and_kept_but_decides_nothing():
    d = decide("pass", "fail", scoring(errors_dry=True))
    assert d.outcome == "pass"
    [errors] = [f for f in d.findings if f.metric == "errors"]
    assert errors.verdict == "fail" and errors.dry_run
    assert errors.sentence("green", "blue").endswith("[dry run]")
    assert d.record()["findings"][1]["dryRun"] is True


def test_groups_weigh_metrics_into_a_score_with_pass_and_marginal_thresholds():
    lenient = scoring(errors_critical=False, groups={"latency": 80, "errors": 20}, pass_score=80)
    assert decide("pass", "fail", lenient).outcome == "pass"
    marginal = scoring(errors_critical=False, pass_score=95, marginal_score=50)
    d = decide("pass", "fail", marginal)
    assert (d.outcome, d.score) == ("undecided", 50.0) and "marginal" in d.reason
    assert decide("pass", "fail", scoring(errors_critical=False)).outcome == "fail"


def test_a_metric_with_nothing_to_compare_with_is_shown_not_counted():
    no_baseline = judge.latency([5.0] * 100, [], TOL)
    assert no_baseline.basis == "no baseline"
    d = judge.decide([no_baseline, judge.errors(0, 2000, 0, 0, TOL)], judge.Scoring(), "g", "b")
    assert d.outcome == "pass"
    assert d.lines("green", "blue")[0] == (
        "latency: not judged, blue has no figures to compare green with"
    )


def test_a_histogram_spreads_each_buckets_requests_across_it():
    values = judge.from_histogram([(0.001, 2), (0.002, 2), (0.004, 6), (float("inf"), 7)])
    assert values == pytest.approx([0.00025, 0.00075, 0.00225, 0.00275, 0.00325, 0.00375, 0.004])


def test_looks_double_up_to_the_cap():
    assert judge.schedule(800, 6400) == [800, 1600, 3200, 6400]
    assert judge.schedule(500, 500) == [500]
    assert judge.schedule(300, 1000) == [300, 600, 1000]


def test_a_finding_survives_its_record():
    f = judge.latency(latencies(200, 5, 1), latencies(200, 5, 2), TOL)
    assert judge.Finding.from_record(f.record()).sentence("g", "b") == f.sentence("g", "b")
