"""The lease the edge serves, read-only, at `GET {edge}/_bluegreen/lease`, and its reader.

    {"holder": "green", "fence": 7, "since": 1763900000.125, "handover": 3, "now": 1763900004.5}

`holder` is the colour whose background writers may run (null: writes frozen, or nothing served),
`fence` grows with each change of pointer (and never goes down, not even when a failed switch is
undone), `since` is when the edge began serving that fence and `now` when it answered, both by the
edge's own clock, in epoch seconds. A new holder's writers may start once
`now >= since + handover`. `bluegreen writer` (agents/arm/writer.py) reads it on arm hosts, which
have no Pulumi: standard library only.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from bluegreen.switch import LEASE_PATH

EDGE_ENV = "BLUEGREEN_EDGE_URL"
READ_TIMEOUT = 1.0
MAX_BODY = 64 * 1024  # a lease is a hundred bytes; more is not a lease


def edge_url(text: str) -> str:
    """The edge's base URL, http or https with a host; `ValueError` saying what is allowed."""
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or any(c.isspace() for c in text)
    ):
        raise ValueError(
            "must be the edge's http:// or https:// URL with a host and no query, such as "
            f"http://10.0.0.5:8080; got {text!r}"
        )
    return text.rstrip("/")


class Unreadable(Exception):
    """The lease could not be read; the message says why. The writer stops on it."""


@dataclass(frozen=True)
class ServedLease:
    holder: str | None
    fence: int
    since: float
    handover: float
    now: float

    def lets(self, color: str) -> bool:
        """`color` holds the lease and the handover has passed, by the edge's clock."""
        return self.holder == color and self.now >= self.since + self.handover


def parse(body: bytes) -> ServedLease:
    try:
        doc = json.loads(body)
    except ValueError:
        raise Unreadable("not JSON") from None
    if not isinstance(doc, dict):
        raise Unreadable("not a JSON object")

    def number(key: str) -> float:
        value = doc.get(key)
        # bool is an int to Python, but `true` is no time and no fence
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise Unreadable(f"{key} is {json.dumps(value)}, not a number")
        if not math.isfinite(value):
            raise Unreadable(f"{key} is {value}, not a finite number")
        return value

    holder = doc.get("holder", False)
    if holder is not None and not isinstance(holder, str):
        raise Unreadable(f"holder is {json.dumps(holder) if 'holder' in doc else 'missing'}")
    fence = number("fence")
    if not isinstance(fence, int):
        raise Unreadable(f"fence is {fence}, not an integer")
    handover = number("handover")
    if handover < 0:
        raise Unreadable(f"handover is {handover}, below 0")
    return ServedLease(holder, fence, float(number("since")), float(handover), float(number("now")))


class LeaseReader:
    def __init__(self, edge: str, timeout: float = READ_TIMEOUT) -> None:
        self.url = edge + LEASE_PATH
        self.timeout = timeout
        # No proxies: a proxy (or its cache) between the writer and the edge could answer with a
        # lease that is no longer true.
        self._open = urllib.request.build_opener(urllib.request.ProxyHandler({})).open

    def read(self) -> ServedLease:
        request = urllib.request.Request(self.url, headers={"Cache-Control": "no-cache"})
        try:
            with self._open(request, timeout=self.timeout) as answer:
                return parse(answer.read(MAX_BODY))
        except urllib.error.HTTPError as err:
            raise Unreadable(f"HTTP {err.code}") from None
        except (OSError, ValueError, http.client.HTTPException) as err:  # refused, timed out, reset
            raise Unreadable(
                str(getattr(err, "reason", None) or err) or type(err).__name__
            ) from None
