"""The hold of a wave judges each of its edges on that edge's own traffic as well as the wave's
together (cutover/hold.py `parts`): one failing edge breaches the wave even when the traffic
together would pass, and an edge with too little traffic is "no data", never a pass."""

from __future__ import annotations

import numpy as np

from bluegreen.config import Hold
from cutover.hold import hold
from cutover.sources.interface import ColorStats, Stats

RULES = Hold(
    confidence=0.95,
    latency_tolerance=0.15,
    latency_floor_ms=0.5,
    error_tolerance=0.005,
    min_requests=50,
    max_s=1,
)


def served(n: int, errors: int = 0, median_ms: float = 5.0, seed: int = 1) -> ColorStats:
    rng = np.random.default_rng(seed)
    ms = median_ms * 0.7 + rng.exponential(median_ms * 0.3 / np.log(2), n)
    return ColorStats(n, errors, float(np.percentile(ms, 95)), tuple(float(x) for x in ms))


class Fixed:
    """A metrics source that answers the same figures every time."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    def check(self) -> None: ...

    def start(self) -> None: ...

    def read(self) -> Stats:
        return self.stats

    def recent(self, color: str) -> ColorStats:
        return self.stats.get(color, ColorStats())


BASELINE = served(2000, seed=2)


def held(parts: dict[str, Stats], together: Stats):
    return hold(
        Fixed(together),
        "green",
        100,
        BASELINE,
        0.01,
        0.01,
        RULES,
        parts={site: Fixed(s) for site, s in parts.items()},
    )


def test_each_edge_of_a_wave_gets_its_own_verdict_when_all_are_healthy():
    a, b = served(1000, seed=3), served(1000, seed=4)
    verdict = held(
        {"site-b": {"green": a}, "site-c": {"green": b}}, {"green": served(2000, seed=5)}
    )
    assert verdict.outcome == "held", verdict.reason
    assert verdict.edges == {"site-b": "pass", "site-c": "pass"}


def test_one_edge_answering_errors_breaches_the_wave_the_traffic_together_would_pass():
    # site-c's 20 errors in 300 are 6.7%; over the wave's 10,300 requests they are 0.2%.
    good, bad = served(10000, seed=6), served(300, errors=20, seed=7)
    together = {"green": served(10300, errors=20, seed=8)}
    alone = hold(Fixed(together), "green", 100, BASELINE, 0.01, 0.01, RULES)
    assert alone.outcome == "held", alone.reason
    verdict = held({"site-b": {"green": good}, "site-c": {"green": bad}}, together)
    assert verdict.outcome == "breach"
    assert verdict.reason.startswith("at edge site-c: "), verdict.reason
    assert verdict.edges["site-c"] == "fail"


def test_an_edge_with_too_little_traffic_to_judge_alone_is_no_data_not_a_pass():
    verdict = held(
        {"site-b": {"green": served(2000, seed=9)}, "site-c": {"green": served(5, seed=10)}},
        {"green": served(2005, seed=11)},
    )
    assert verdict.outcome == "held", verdict.reason
    assert verdict.edges == {"site-b": "pass", "site-c": "no data"}


def test_without_parts_a_hold_has_no_edge_verdicts():
    verdict = hold(
        Fixed({"green": served(2000, seed=12)}), "green", 100, BASELINE, 0.01, 0.01, RULES
    )
    assert verdict.outcome == "held" and verdict.edges is None
