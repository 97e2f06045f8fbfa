"""The local edge's access log as the hold's metrics source: what it counts, and that a hold
which keeps holding keeps a bounded amount of it in memory."""

from __future__ import annotations

import json
import random

from bluegreen.probe import percentile
from cutover.sources.access_log import AccessLogSource

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
