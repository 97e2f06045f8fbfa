"""The local edge's access log as the hold's metrics source: what it counts, and that a hold
which keeps holding keeps a bounded amount of it in memory."""

from __future__ import annotations

import json
import random

import pytest

from bluegreen.probe import percentile
from cutover.sources.access_log import AccessLogSource
from cutover.sources.interface import Unreachable

BLUE = "127.0.0.1:9001"


def line(seconds: float, status: int = 200, probe: str = "") -> str:
    entry = {
        "upstream": BLUE,
        "upstream_status": str(status),
        "request_time": seconds,
        "probe": probe,
    }
    return json.dumps(entry) + "\n"


def test_a_long_hold_keeps_one_count_per_millisecond_not_one_latency_per_request(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("")
    source = AccessLogSource(str(log), {BLUE: "blue"})
    rng = random.Random(7)
    times = [rng.randint(1, 40) / 1000 for _ in range(50_000)]
    with log.open("a") as f:
        for i, t in enumerate(times):
            f.write(line(t, 502 if i % 1000 == 0 else 200))
            f.write(line(t, probe="1"))  # bluegreen's own: not counted
    stats = source.read()["blue"]
    assert (stats.requests, stats.errors) == (50_000, 50)
    answered = [t * 1000 for i, t in enumerate(times) if i % 1000]
    assert stats.p95_ms == percentile(answered, 95)
    assert len(stats.latencies) == 49_950  # the judge still ranks every request
    assert sum(source.latencies["blue"].values()) == 49_950
    assert len(source.latencies["blue"]) <= 40  # what the source holds between reads


def test_several_edges_are_read_together_each_from_where_the_hold_began(tmp_path):
    logs = [tmp_path / f"access-{i}.log" for i in range(3)]
    logs[0].write_text(line(0.001, 502) * 7)  # before the hold: not counted
    logs[1].write_text("")
    source = AccessLogSource([str(p) for p in logs[:2]], {BLUE: "blue"})
    with logs[0].open("a") as f:
        f.write(line(0.002) * 3)
    with logs[1].open("a") as f:
        f.write(line(0.004, 502) + line(0.004) * 2)
    stats = source.read()["blue"]
    assert (stats.requests, stats.errors) == (6, 1)
    assert source.recent("blue").requests == 13  # the recent window reads every log
    source.paths += (str(logs[2]),)
    with pytest.raises(Unreachable, match="access-2.log"):  # an edge whose log is gone is named
        source.check()
