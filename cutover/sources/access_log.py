"""The local edge's metrics source: nginx's JSON access log, as the edge stack's `metrics`
output names it: `{"source": "accessLog", "path": ..., "paths": [...]}`, one log per edge when
the stack has several (bluegreen:edges), read together."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence

from bluegreen_policy import judge

from bluegreen.probe import percentile
from cutover.sources.interface import ColorStats, Stats, Unreachable


class AccessLogSource:
    """nginx's JSON access log of the local edge: one line a request, with every upstream tried
    and its status, so a request that failed on the new arm and was retried on the old one still
    counts against the new arm."""

    RECENT_BYTES = 512 * 1024

    def __init__(self, paths: str | Sequence[str], addresses: Mapping[str, str]) -> None:
        self.paths = (paths,) if isinstance(paths, str) else tuple(paths)
        self.describe = f"nginx's access log {', '.join(self.paths)}"
        self.colors = dict(addresses)  # "host:port" -> colour, to attribute retried attempts
        self.start()

    def check(self) -> None:
        for path in self.paths:
            if not os.access(path, os.R_OK):
                raise Unreachable(f"nginx's access log {path} cannot be read: is that edge up?")

    @staticmethod
    def _size(path: str) -> int:
        try:
            return os.path.getsize(path)
        except OSError:
            return 0

    def start(self) -> None:
        self.offsets = {path: self._size(path) for path in self.paths}
        self.counts: dict[str, list[int]] = {}
        # Per colour, how many requests took each whole millisecond (nginx logs no finer): a
        # hold that keeps holding holds one number per millisecond seen, not one per request.
        self.latencies: dict[str, Counter[int]] = {}

    def read(self) -> Stats:
        for path in self.paths:
            self.offsets[path] += self._scan(path, self.offsets[path], self.counts, self.latencies)
        return self._stats(self.counts, self.latencies)

    def recent(self, color: str) -> ColorStats:
        counts: dict[str, list[int]] = {}
        latencies: dict[str, Counter[int]] = {}
        for path in self.paths:
            start = max(0, self._size(path) - self.RECENT_BYTES)
            self._scan(path, start, counts, latencies, skip_first=True)
        return self._stats(counts, latencies).get(color, ColorStats())

    @staticmethod
    def _stats(counts: dict[str, list[int]], latencies: dict[str, Counter[int]]) -> Stats:
        return {
            c: ColorStats(
                requests=n,
                errors=e,
                p95_ms=percentile(list(latencies[c].elements()), 95) if latencies.get(c) else None,
                latencies=AccessLogSource._spread(latencies.get(c, Counter())),
            )
            for c, (n, e) in counts.items()
        }

    @staticmethod
    def _spread(counts: Counter[int]) -> tuple[float, ...]:
        """nginx logs whole milliseconds (the difference of two clocks read to the ms, so a
        0.4 ms request logs as 0 or 1): each logged value stands for the millisecond around it,
        its requests spread evenly across it, which keeps a loopback service's thousands of
        ties from hiding a shift smaller than a millisecond."""
        cumulative, total = [], 0
        for ms in sorted(counts):
            total += counts[ms]
            cumulative.append((ms + 0.5, total))
        return tuple(judge.from_histogram(cumulative))

    def _scan(
        self,
        path: str,
        offset: int,
        counts: dict[str, list[int]],
        latencies: dict[str, Counter[int]],
        skip_first: bool = False,
    ) -> int:
        """Count whole lines from `offset`; return how many bytes were consumed."""
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except OSError:
            return 0
        end = chunk.rfind(b"\n") + 1  # leave a half-written last line for the next read
        lines = chunk[:end].splitlines()
        for line in lines[1:] if skip_first and offset else lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            self._count(entry, counts, latencies)
        return end

    def _count(
        self, entry: dict, counts: dict[str, list[int]], latencies: dict[str, Counter[int]]
    ) -> None:
        if entry.get("probe"):  # bluegreen's own (bluegreen/probe.py PROBE_HEADER): not traffic
            return
        addrs = [a.strip() for a in str(entry.get("upstream", "")).split(",") if a.strip()]
        statuses = [s.strip() for s in str(entry.get("upstream_status", "")).split(",")]
        for i, addr in enumerate(addrs):
            color = self.colors.get(addr)
            if color is None:
                continue
            n = counts.setdefault(color, [0, 0])
            n[0] += 1
            code = statuses[i] if i < len(statuses) else ""
            if not code.isdigit() or int(code) >= 500:
                n[1] += 1
            elif i == len(addrs) - 1:
                ms = round(float(entry.get("request_time", 0)) * 1000)
                latencies.setdefault(color, Counter())[ms] += 1
