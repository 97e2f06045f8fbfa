"""Several edges' sources read as one: a wave of a flip on a platform whose source is per edge
(CloudWatch, per ALB). Requests and errors add up; latencies join where every part has them,
else the p95 is the highest part's, which never hides a slow edge behind a fast one."""

from __future__ import annotations

from collections.abc import Sequence

from cutover.sources.interface import ColorStats, MetricsSource, Stats


def joined(parts: Sequence[ColorStats]) -> ColorStats:
    p95s = [p.p95_ms for p in parts if p.p95_ms is not None]
    spreads = [p.latencies for p in parts if p.requests]
    latencies = None
    if spreads and all(s is not None for s in spreads):
        latencies = tuple(x for s in spreads for x in s)
    return ColorStats(
        requests=sum(p.requests for p in parts),
        errors=sum(p.errors for p in parts),
        p95_ms=max(p95s) if p95s else None,
        latencies=latencies,
    )


class CombinedSource:
    def __init__(self, parts: Sequence[MetricsSource]) -> None:
        self.parts = list(parts)
        self.describe = " and ".join(p.describe for p in self.parts)

    def check(self) -> None:
        for part in self.parts:
            part.check()

    def start(self) -> None:
        for part in self.parts:
            part.start()

    def read(self) -> Stats:
        read = [part.read() for part in self.parts]
        colors = sorted({c for stats in read for c in stats})
        return {c: joined([stats.get(c, ColorStats()) for stats in read]) for c in colors}

    def recent(self, color: str) -> ColorStats:
        return joined([part.recent(color) for part in self.parts])
