"""The interface every metrics source implements (`MetricsSource`), and what it answers: each
colour's `ColorStats` in a window, or `Unreachable`. cutover/sources/__init__.py lists the sources.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


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
