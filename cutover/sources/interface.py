"""Where the hold reads live traffic per colour: one interface, one source per platform.

The edge stack says which source to read and how, in its `metrics` output (each platform adapter
writes it from the stack's bluegreen:metrics* keys), so the command needs no flags to find it:

    {"source": "accessLog", "path": ...}                        local: nginx's JSON access log
    {"source": "prometheus", "url": ..., "queries": {...},      local, nixos, kubernetes
     "selectors": {"blue": ..., "green": ...}}
    {"source": "cloudwatch", "region": ..., "loadBalancer": ...,  aws (cutover/cloudwatch.py)
     "targetGroups": {"blue": ..., "green": ...}}

cutover/sources.py makes the source the output names. A source that cannot answer raises
`Unreachable`; the flip checks it before the pointer moves.
"""

from __future__ import annotations

import json
import math
import os
import string
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bluegreen_policy import judge

from bluegreen.probe import percentile


@dataclass
class ColorStats:
    """What one colour served in a window."""

    requests: int = 0
    errors: int = 0
    """Requests answered 5xx (or not at all) by this colour, including ones nginx retried."""
    p95_ms: float | None = None
    """None: the source has no latency for this colour in the window."""
    latencies: tuple[float, ...] | None = field(default=None, repr=False, compare=False)
    """Every request's latency in ms (an access log), or values standing for them (a histogram's
    buckets); None when the source gives no distribution (the judge then has the p95 alone)."""

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


Stats = dict[str, ColorStats]


class Unreachable(Exception):
    """The metrics source did not answer; the sentence says which and why."""


class MetricsSource(Protocol):
    describe: str
    """What is read, for messages: "Prometheus at http://127.0.0.1:19090"."""

    def check(self) -> None:
        """Raise `Unreachable` if the source cannot answer now."""
        ...

    def start(self) -> None:
        """Count from now on."""
        ...

    def read(self) -> Stats:
        """Traffic per colour since `start()`."""
        ...

    def recent(self, color: str) -> ColorStats:
        """What `color` served over the last minutes (the baseline before a flip)."""
        ...


class AccessLogSource:
    """nginx's JSON access log of the local edge: one line a request, with every upstream tried
    and its status, so a request that failed on the new arm and was retried on the old one still
    counts against the new arm."""

    RECENT_BYTES = 512 * 1024

    def __init__(self, path: str, addresses: Mapping[str, str]) -> None:
        self.path = path
        self.describe = f"nginx's access log {path}"
        self.colors = dict(addresses)  # "host:port" -> colour, to attribute retried attempts
        self.start()

    def check(self) -> None:
        if not os.access(self.path, os.R_OK):
            raise Unreachable(f"{self.describe} cannot be read: is the local edge up?")

    def _size(self) -> int:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def start(self) -> None:
        self.offset = self._size()
        self.counts: dict[str, list[int]] = {}
        # Per colour, how many requests took each whole millisecond (nginx logs no finer): a
        # hold that keeps holding holds one number per millisecond seen, not one per request.
        self.latencies: dict[str, Counter[int]] = {}

    def read(self) -> Stats:
        self.offset += self._scan(self.offset, self.counts, self.latencies)
        return self._stats(self.counts, self.latencies)

    def recent(self, color: str) -> ColorStats:
        counts: dict[str, list[int]] = {}
        latencies: dict[str, Counter[int]] = {}
        self._scan(max(0, self._size() - self.RECENT_BYTES), counts, latencies, skip_first=True)
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
        offset: int,
        counts: dict[str, list[int]],
        latencies: dict[str, Counter[int]],
        skip_first: bool = False,
    ) -> int:
        """Count whole lines from `offset`; return how many bytes were consumed."""
        try:
            with open(self.path, "rb") as f:
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


QUERIES = ("requests", "errors", "p95")
OPTIONAL = ("buckets",)
"""The PromQL templates a Prometheus source needs, each a string.Template. requests and errors
are a colour's counters as they stand (over $selector, the colour's label matchers): the source
takes their growth since the hold began, which counts every request exactly, also on series that
first appear during the hold (increase() over a window misses a new series' first requests).
p95 is the colour's latency in seconds over $window, a range such as 30s. buckets (optional: an
older stack's output has none) is the colour's latency histogram over $window, one series per
`le`: with it, the hold's judge ranks the requests, without it, it has the p95 alone."""


class PrometheusSource:
    """Prometheus's HTTP API, with one PromQL template per figure and a selector per colour."""

    RECENT = "5m"
    SCRAPE_MARGIN_S = 2

    def __init__(
        self,
        url: str,
        queries: Mapping[str, str],
        selectors: Mapping[str, str],
        timeout: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self.describe = f"Prometheus at {self.url}"
        missing = [q for q in QUERIES if not queries.get(q)]
        if missing:
            raise ValueError(f"PrometheusSource needs the {', '.join(missing)} queries")
        self.templates = {
            q: string.Template(queries[q]) for q in QUERIES + OPTIONAL if queries.get(q)
        }
        self.selectors = dict(selectors)
        self.timeout = timeout
        self.clock = clock
        self.since = clock()
        self.base: dict[str, tuple[float, float]] = {}

    def query(self, promql: str) -> float | None:
        """The instant query's value (summed over series), or None when it has no series."""
        values = [v for _, v in self.series(promql)]
        return sum(values) if values else None

    def series(self, promql: str) -> list[tuple[dict, float]]:
        """The instant query's series: (labels, value) each, without NaN."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:300]
            raise Unreachable(f"{self.describe} refused the query {promql!r}: {detail}") from None
        except (OSError, ValueError) as err:
            raise Unreachable(f"{self.describe} did not answer: {err}") from None
        if body.get("status") != "success":
            raise Unreachable(f"{self.describe} failed the query {promql!r}: {body.get('error')}")
        found = [
            (r.get("metric") or {}, float(r["value"][1])) for r in body["data"].get("result", [])
        ]
        return [(labels, v) for labels, v in found if not math.isnan(v)]

    def _figure(self, name: str, color: str, window: str = "") -> float | None:
        promql = self.templates[name].substitute(selector=self.selectors[color], window=window)
        return self.query(promql)

    def _totals(self, color: str) -> tuple[float, float]:
        return self._figure("requests", color) or 0.0, self._figure("errors", color) or 0.0

    def _p95_ms(self, color: str, window: str) -> float | None:
        p95 = self._figure("p95", color, window)
        return p95 * 1000 if p95 is not None else None

    def _latencies(self, color: str, window: str) -> tuple[float, ...] | None:
        """Values standing for the colour's requests in the window, from its histogram (ms)."""
        if "buckets" not in self.templates:
            return None
        promql = self.templates["buckets"].substitute(selector=self.selectors[color], window=window)
        cumulative = [(float(labels.get("le", "nan")), v) for labels, v in self.series(promql)]
        cumulative = [(le, v) for le, v in cumulative if not math.isnan(le)]
        return tuple(ms * 1000 for ms in judge.from_histogram(cumulative))

    def check(self) -> None:
        for color in self.selectors:
            self._totals(color)
            self._p95_ms(color, "1m")
            self._latencies(color, "1m")

    def start(self) -> None:
        self.since = self.clock()
        self.base = {color: self._totals(color) for color in self.selectors}

    def read(self) -> Stats:
        # From the last scrape before the hold began (scrapes are a second apart, locally), so a
        # window holds at least two samples and the hold's first requests count.
        window = f"{math.ceil(self.clock() - self.since) + self.SCRAPE_MARGIN_S}s"
        stats = {}
        for color in self.selectors:
            requests, errors = self._totals(color)
            base_requests, base_errors = self.base.get(color, (0.0, 0.0))
            if requests < base_requests:  # the counter was reset (the arm restarted)
                base_requests, base_errors = 0.0, 0.0
            stats[color] = ColorStats(
                requests=round(requests - base_requests),
                errors=round(max(0.0, errors - base_errors)),
                p95_ms=self._p95_ms(color, window),
                latencies=self._latencies(color, window),
            )
        return stats

    def recent(self, color: str) -> ColorStats:
        requests, errors = self._totals(color)
        return ColorStats(
            round(requests),
            round(errors),
            self._p95_ms(color, self.RECENT),
            self._latencies(color, self.RECENT),
        )
