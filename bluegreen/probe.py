"""HTTP probes shared by the edge (confirming a flip), the policy pack and the scripts.

Standard library only: the dynamic provider and the policy pack import this in processes that
start on every `pulumi up`, and each import is paid on the flip's critical path.
"""

from __future__ import annotations

import http.client
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange, or the reason there was none."""

    url: str
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 400

    @property
    def color(self) -> str | None:
        return self.headers.get("x-bluegreen-color")

    @property
    def version(self) -> str | None:
        return self.headers.get("x-bluegreen-version")

    def json(self) -> dict:
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def describe(self) -> str:
        if self.error:
            return f"{self.url} did not answer ({self.error})"
        return f"{self.url} answered HTTP {self.status}"


def request(
    url: str,
    method: str = "GET",
    timeout: float = 2.0,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Answer:
    """Send one request on a fresh connection (never a kept-alive one to an old nginx worker)."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    start = time.perf_counter()
    conn = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout
    )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Answer(
            url=url,
            status=resp.status,
            headers={k.lower(): v for k, v in resp.getheaders()},
            body=data,
            seconds=time.perf_counter() - start,
        )
    except (OSError, http.client.HTTPException) as exc:
        reason = (
            exc.strerror
            if isinstance(exc, OSError) and exc.strerror
            else str(exc) or type(exc).__name__
        )
        return Answer(
            url=url,
            status=None,
            seconds=time.perf_counter() - start,
            error=reason.lower(),
        )
    finally:
        conn.close()


def readiness(endpoint: str, health_path: str, timeout: float = 2.0) -> Answer:
    return request(endpoint.rstrip("/") + health_path, timeout=timeout)


PROBE_HEADER = "X-Bluegreen-Probe"
"""Marks bluegreen's own requests (the switch's confirmation, the gate's smoke sample): the arms
do not count them in their metrics, and the hold never mistakes them for users' traffic. The
policy pack stands alone, so its copy of the name is pinned by tests/unit/test_layers.py.

Through an nginx edge the value must be the edge's probe token (the switch state's `probe`,
`new_token`): the edge trusts the header only then, and otherwise removes it before an arm or
its own limits, cache and access log see it. Straight to an arm any value marks a probe: arms are
reachable by the edge and operators only (app/server.py)."""

WARM_HEADER = "X-Bluegreen-Warm"
REPLAY_HEADER = "X-Bluegreen-Replay"
"""The queue service's replays: the receipt of the intent replayed."""
RETRY_AFTER_HEADER = "X-Bluegreen-Retry-After"
"""The edge to the queue service: the Retry-After it would have answered."""
RECEIPT_HEADER = "X-Bluegreen-Receipt"
"""The queue service's answer to a kept write (and, in a request, never anything)."""
CLIENT_HEADER = "X-Bluegreen-Client"
"""The edge to the queue service: the address the write came from."""
REQUEST_HEADERS = (
    PROBE_HEADER,
    WARM_HEADER,
    REPLAY_HEADER,
    "X-Bluegreen-Shadow",
    RETRY_AFTER_HEADER,
    RECEIPT_HEADER,
    CLIENT_HEADER,
)
"""Every `X-Bluegreen-*` header bluegreen sends in a request. A client must not be able to send
one through the edge: the edge sets each of them itself toward the arms and the queue service
(bluegreen/nginx_text/proxy.conf, bluegreen/nginx_conf/queueing.py), to its verified value or to ""
(removed).
tests/unit/test_nginx.py greps the sources for names missing here."""


def new_token() -> str:
    """A fresh probe token: 128 random bits, hex (safe in JSON, a header and a file)."""
    return secrets.token_hex(16)


def wait_until(
    url: str, accept, timeout: float, interval: float = 0.05, token: str = ""
) -> tuple[Answer, float]:
    """Poll `url` until `accept(answer)` holds or `timeout` passes; return last answer and wait.
    The polls are marked as bluegreen's own (PROBE_HEADER): with `token`, the edge's probe token,
    which an nginx edge needs to count them as such (its limits do not apply to them)."""
    start = time.monotonic()
    while True:
        answer = request(
            url, timeout=min(2.0, max(timeout, 0.1)), headers={PROBE_HEADER: token or "confirm"}
        )
        waited = time.monotonic() - start
        if accept(answer) or waited >= timeout:
            return answer, waited
        time.sleep(interval)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value at or below which q% of the values fall."""
    if not values:
        return math.inf
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]
