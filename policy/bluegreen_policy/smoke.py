"""The side-by-side smoke sample: the arm about to take traffic against the arm that has it.

The judge (judge.py) looks after each batch: a clear verdict either way ends the sample, an
undecided one doubles it, up to the cap, where it stays undecided (inconclusive).

Requests to the two arms are interleaved (target, live, live, target, ...) by the same few
workers, each on kept-alive connections, so both arms see the same machine load: a slow moment
costs both equally instead of condemning whichever arm happened to be sampled during it.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from bluegreen_policy import judge

# Marks the pack's own requests: the arms do not count them in the metrics the hold after a flip
# reads (the core's bluegreen/probe.py PROBE_HEADER; pinned equal by tests/unit/test_layers.py).
PROBE_HEADER = "X-Bluegreen-Probe"


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange with an arm, or why there was none."""

    url: str
    status: int | None
    body: bytes = b""
    seconds: float = 0.0
    error: str | None = None

    def readiness(self) -> dict:
        """The readiness document an arm answers with ({} when the body is not one)."""
        try:
            document = json.loads(self.body)
        except ValueError:
            document = None
        return document if isinstance(document, dict) else {}

    def describe(self) -> str:
        what = f"did not answer ({self.error})" if self.error else f"answered HTTP {self.status}"
        return f"{self.url} {what}"


@dataclass(frozen=True)
class Sample:
    endpoint: str
    count: int
    errors: int
    p50_ms: float
    p95_ms: float
    first_error: str | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 1.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (the value below which q% of the samples fall)."""
    if not values:
        return math.inf
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _summarise(endpoint: str, answers: list[Answer]) -> Sample:
    failed = [a for a in answers if a.status is None or a.status >= 500]
    latencies = [a.seconds * 1000 for a in answers if a.status is not None]
    return Sample(
        endpoint=endpoint,
        count=len(answers),
        errors=len(failed),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        first_error=failed[0].describe() if failed else None,
    )


class Client:
    """One kept-alive connection to one endpoint: measures the arm, not TCP set-up and teardown."""

    def __init__(self, base: str, timeout: float) -> None:
        parts = urlsplit(base)
        self.base, self.host, self.port = base, parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str, method: str = "GET") -> Answer:
        url = self.base + path
        start = time.perf_counter()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn.request(method, path, headers={PROBE_HEADER: "smoke"})
            resp = self.conn.getresponse()
            body = resp.read()
            return Answer(url, resp.status, body, time.perf_counter() - start)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            return Answer(url, None, seconds=time.perf_counter() - start, error=reason.lower())

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def fetch(url: str, method: str = "GET", timeout: float = 2.0) -> Answer:
    """One request on its own connection."""
    parts = urlsplit(url)
    client = Client(f"{parts.scheme}://{parts.netloc}", timeout)
    try:
        return client.get(parts.path or "/", method)
    finally:
        client.close()


def side_by_side(
    target: str, live: str, path: str, samples: int, concurrency: int, timeout: float
) -> tuple[list[Answer], list[Answer]]:
    """Sample both endpoints `samples` times each, interleaved; every answer of each."""
    per_worker = [samples // concurrency + (i < samples % concurrency) for i in range(concurrency)]

    def work(n: int) -> tuple[list[Answer], list[Answer]]:
        a, b = Client(target, timeout), Client(live, timeout)
        got: tuple[list[Answer], list[Answer]] = ([], [])
        try:
            for i in range(n):  # alternate which arm goes first: neither always follows the other
                for client in (a, b) if i % 2 == 0 else (b, a):
                    got[client is b].append(client.get(path))
        finally:
            a.close()
            b.close()
        return got

    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(work, [n for n in per_worker if n]))
    return [x for r in results for x in r[0]], [x for r in results for x in r[1]]


@dataclass(frozen=True)
class Comparison:
    """The arms side by side until the judge decided, or the sample cap was reached."""

    decision: judge.Decision
    target: Sample
    live: Sample
    seconds: float
    looks: int

    @property
    def inconclusive(self) -> bool:
        return self.decision.outcome == "undecided"


def findings(
    target: list[Answer], live: list[Answer], tol: judge.Tolerance, scoring: judge.Scoring
) -> list[judge.Finding]:
    """The judge's findings on two arms' answers: latency of every answer, 5xx or none an error."""

    def ms(answers: list[Answer]) -> list[float]:
        return [a.seconds * 1000 for a in answers if a.status is not None]

    def errors(answers: list[Answer]) -> int:
        return sum(a.status is None or a.status >= 500 for a in answers)

    return [
        judge.latency(ms(target), ms(live), tol, **scoring.rule("latency").flags),
        judge.errors(
            errors(target),
            len(target),
            errors(live),
            len(live),
            tol,
            **scoring.rule("errors").flags,
        ),
    ]


def compare(
    target: str,
    live: str,
    path: str,
    looks: list[int],
    concurrency: int,
    timeout: float,
    tol: judge.Tolerance,
    scoring: judge.Scoring,
    names: tuple[str, str] = ("target", "live"),
) -> Comparison:
    """Sample both arms, judging at each look (requests per arm so far), until decided."""
    got: tuple[list[Answer], list[Answer]] = ([], [])
    start = time.perf_counter()
    decision = None
    look = 0
    for n in looks:
        look += 1
        more = side_by_side(target, live, path, n - len(got[0]), concurrency, timeout)
        got[0].extend(more[0])
        got[1].extend(more[1])
        decision = judge.decide(findings(*got, tol, scoring), scoring, *names)
        if decision.outcome != "undecided":
            break
    assert decision is not None, "no looks"
    return Comparison(
        decision,
        _summarise(target, got[0]),
        _summarise(live, got[1]),
        time.perf_counter() - start,
        look,
    )


# The operator's command asks for the figures of the sample the gate took (its evidence), so that
# nobody samples the arms a second time: set to a file path, the pack writes them there.
REPORT_ENV = "BLUEGREEN_SMOKE_REPORT"


def write_report(target: str, live: str, c: Comparison) -> None:
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    figures = {
        color: {"p50Ms": round(s.p50_ms, 2), "p95Ms": round(s.p95_ms, 2), "errorRate": s.error_rate}
        for color, s in ((target, c.target), (live, c.live))
    }
    with open(path, "w") as f:
        json.dump(
            {
                **figures,
                "samples": c.target.count,
                "seconds": round(c.seconds, 2),
                "looks": c.looks,
                "judge": c.decision.record(),
            },
            f,
        )
