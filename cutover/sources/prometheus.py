"""The Prometheus metrics source (local, nixos, kubernetes): `{"source": "prometheus", "url": ...,
"queries": {...}, "selectors": {"blue": ..., "green": ...}}`."""

from __future__ import annotations

import json
import math
import string
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping

from bluegreen_policy import judge

from cutover.sources.interface import ColorStats, Stats, Unreachable

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
