"""The reference service's Prometheus metrics (`prometheus_client`): every request other than the
health path and /metrics itself, counted by method and status code and timed in a histogram,
labelled with the arm's colour and version (the names are pinned in bluegreen/arm_metrics.py)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Eight buckets per doubling from a quarter of a millisecond to about 5 s (each bound 9% above the
# last, as Prometheus's native histograms at schema 3): the hold's judge ranks the requests in
# them, and a 20% slower release must move them by more than a bucket.
BUCKETS = tuple(float(f"{0.00025 * 2 ** (k / 8):.6g}") for k in range(115))


class Metrics:
    """The arm's request counter and latency histogram, in a registry of its own."""

    def __init__(self, color: str, version: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bluegreen_http_requests",
            "Requests served, by method and status code.",
            ["color", "version", "method", "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "bluegreen_http_request_duration_seconds",
            "Seconds to answer a request.",
            ["color", "version"],
            buckets=BUCKETS,
            registry=self.registry,
        ).labels(color, version)
        self.identity = (color, version)

    def observe(self, method: str, status: int, seconds: float) -> None:
        self.requests.labels(*self.identity, method, str(status)).inc()
        self.duration.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
