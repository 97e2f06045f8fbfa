"""Hold and watch: live traffic per colour after a flip or canary step, against stop rules.

On the local platform the numbers come from nginx's own access log (one JSON line a request,
with every upstream tried and its status), so a request that failed on the new arm and was
retried on the old one still counts against the new arm. Cloud platforms plug a metrics source
with the same `read()` into the same watch (`PrometheusSource`).
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

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


class PrometheusSource:
    """Per-colour request and 5xx counts and p95 latency from a Prometheus server's HTTP API.

    `requests`, `errors` and `p95` are PromQL templates with `{color}` and `{window}`; the
    defaults fit the common `http_requests_total{color,code}` counter and
    `http_request_duration_seconds_bucket{color}` histogram."""

    def __init__(
        self,
        url: str,
        window_s: int = 30,
        requests: str = 'sum(increase(http_requests_total{{color="{color}"}}[{window}s]))',
        errors: str = (
            'sum(increase(http_requests_total{{color="{color}",code=~"5.."}}[{window}s]))'
        ),
        p95: str = (
            "histogram_quantile(0.95, sum by (le) "
            '(rate(http_request_duration_seconds_bucket{{color="{color}"}}[{window}s])))'
        ),
        colors: tuple[str, ...] = ("blue", "green"),
    ) -> None:
        self.url, self.window = url.rstrip("/"), window_s
        self.queries = {"requests": requests, "errors": errors, "p95": p95}
        self.colors = colors

    def _scalar(self, query: str) -> float:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
        result = body.get("data", {}).get("result", [])
        return float(result[0]["value"][1]) if result else 0.0

    def read(self) -> Stats:
        stats: Stats = {}
        for color in self.colors:
            q = {k: v.format(color=color, window=self.window) for k, v in self.queries.items()}
            p95 = self._scalar(q["p95"]) * 1000
            stats[color] = ColorStats(
                requests=int(self._scalar(q["requests"])),
                errors=int(self._scalar(q["errors"])),
                latencies_ms=[p95] if p95 else [],
            )
        return stats


@dataclass(frozen=True)
class StopRules:
    # 5xx over 1%, p95 over +15% of the pre-flip baseline (rollback_and_fast_recovery).
    max_error_rate: float = 0.01
    p95_ratio: float = 1.15
    p95_allowance_ms: float = 2.0
    """As in the policy pack: below ~13 ms, noise exceeds 15%; within this many ms passes."""
    min_requests: int = 20
    """Judge a colour only once it has served this many requests in the hold so far."""


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
    stats: Stats, target: str, weight: int, baseline_p95: float | None, rules: StopRules
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
    interval: float = 1.0,
    rules: StopRules | None = None,
    on_check: Callable[[Stats], None] | None = None,
) -> Verdict:
    """Watch for `seconds`, checking every `interval`; stop at the first breach."""
    rules = rules or StopRules()
    stats: Stats = {}
    start = time.monotonic()
    while True:
        time.sleep(min(interval, max(0.0, seconds - (time.monotonic() - start))))
        merge(stats, source.read())
        if on_check:
            on_check(stats)
        breach = judge(stats, target, weight, baseline_p95, rules)
        elapsed = time.monotonic() - start
        if breach or elapsed >= seconds:
            return Verdict(breach, stats, elapsed)
