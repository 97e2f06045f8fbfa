"""Hold and watch: live traffic per colour after a flip or canary step, against stop rules.

On the local platform the numbers come from nginx's own access log (one JSON line a request,
with every upstream tried and its status), so a request that failed on the new arm and was
retried on the old one still counts against the new arm. Another platform's metrics plug into the
same watch as a source with the same `read()`. The stop rules are the edge stack's
(`bluegreen:hold*`, read into `config.Hold`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Protocol

from bluegreen.config import Hold
from bluegreen.probe import percentile


@dataclass
class ColorStats:
    requests: int = 0
    errors: int = 0
    """Attempts answered 5xx (or not at all) by this colour, including ones nginx retried."""
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies_ms, 95) if self.latencies_ms else 0.0


Stats = dict[str, ColorStats]


class MetricsSource(Protocol):
    def read(self) -> Stats:
        """Traffic per colour since the previous read (the first read: since construction)."""
        ...


class AccessLogSource:
    """nginx's JSON access log of the local edge, read from where it ended when constructed."""

    def __init__(self, path: str, addresses: dict[str, str]) -> None:
        self.path = path
        self.colors = addresses  # "host:port" -> colour, to attribute retried attempts
        try:
            self.offset = os.path.getsize(path)
        except OSError:
            self.offset = 0

    def read(self) -> Stats:
        stats: Stats = {}
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return stats
        end = chunk.rfind(b"\n") + 1  # leave a half-written last line for the next read
        self.offset += end
        for line in chunk[:end].splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            self._count(entry, stats)
        return stats

    def _count(self, entry: dict, stats: Stats) -> None:
        addrs = [a.strip() for a in str(entry.get("upstream", "")).split(",") if a.strip()]
        statuses = [s.strip() for s in str(entry.get("upstream_status", "")).split(",")]
        for i, addr in enumerate(addrs):
            color = self.colors.get(addr)
            if color is None:
                continue
            s = stats.setdefault(color, ColorStats())
            s.requests += 1
            code = statuses[i] if i < len(statuses) else ""
            if not code.isdigit() or int(code) >= 500:
                s.errors += 1
            elif i == len(addrs) - 1:
                s.latencies_ms.append(float(entry.get("request_time", 0)) * 1000)


@dataclass
class Verdict:
    breach: str | None
    stats: Stats
    seconds: float


def merge(into: Stats, new: Stats) -> None:
    for color, s in new.items():
        t = into.setdefault(color, ColorStats())
        t.requests += s.requests
        t.errors += s.errors
        t.latencies_ms.extend(s.latencies_ms)


def judge(
    stats: Stats, target: str, weight: int, baseline_p95: float | None, rules: Hold
) -> str | None:
    """The first stop rule `target` breaks with these numbers, as a sentence, or None."""
    s = stats.get(target, ColorStats())
    total = sum(x.requests for x in stats.values())
    if s.requests >= rules.min_requests and s.error_rate > rules.max_error_rate:
        return (
            f"{target} answered {s.errors} of {s.requests} attempts with 5xx or not at all "
            f"({s.error_rate:.1%} > {rules.max_error_rate:.1%})"
        )
    if total >= rules.min_requests * 2 and weight > 0 and s.requests < total * weight / 100 / 3:
        return (
            f"{target} took {s.requests} of {total} requests while weighted {weight}%: "
            "nginx is routing around it (crashed or failing)"
        )
    if baseline_p95 and len(s.latencies_ms) >= rules.min_requests:
        limit = max(baseline_p95 * rules.p95_ratio, baseline_p95 + rules.p95_allowance_ms)
        if s.p95_ms > limit:
            return (
                f"{target} p95 {s.p95_ms:.1f} ms exceeds {rules.p95_ratio:g} x the pre-flip "
                f"baseline ({baseline_p95:.1f} ms)"
            )
    return None


def hold(
    source: MetricsSource,
    target: str,
    weight: int,
    baseline_p95: float | None,
    seconds: float,
    interval: float,
    rules: Hold,
) -> Verdict:
    """Watch for `seconds`, checking every `interval`; stop at the first breach."""
    stats: Stats = {}
    start = time.monotonic()
    while True:
        time.sleep(min(interval, max(0.0, seconds - (time.monotonic() - start))))
        merge(stats, source.read())
        breach = judge(stats, target, weight, baseline_p95, rules)
        elapsed = time.monotonic() - start
        if breach or elapsed >= seconds:
            return Verdict(breach, stats, elapsed)
