"""The metrics every arm's service exposes, and the PromQL that reads them per colour.

The reference service (app/server.py) counts each request it serves by status code, and times it
in a histogram, labelled with the arm's colour and version; the health path and /metrics are not
counted. The local and NixOS edges run a Prometheus that scrapes both arms; the hold reads it with
these templates: requests and errors are a colour's counters as they stand, over $selector (the
colour's label matchers), p95 is its latency in seconds over $window (a range such as 30s), and
buckets is its latency histogram over $window, one value per `le` bound (the hold's judge ranks
the requests in it). A stack may replace any of them (bluegreen:promqlRequests,
bluegreen:promqlErrors, bluegreen:promqlP95, bluegreen:promqlBuckets); a unit test pins the names
here to the ones the service exposes.
"""

from __future__ import annotations

REQUESTS = "bluegreen_http_requests_total"
"""Counter: requests served, labels color, version, method, code."""
DURATION = "bluegreen_http_request_duration_seconds"
"""Histogram: seconds to answer, labels color, version."""
PATH = "/metrics"
"""Where each arm's service exposes them."""

APP_QUERIES = {
    "requests": f"sum({REQUESTS}{{$selector}})",
    "errors": f'sum({REQUESTS}{{$selector,code=~"5.."}})',
    "p95": (
        f"histogram_quantile(0.95, sum by (le) (increase({DURATION}_bucket{{$selector}}[$window])))"
    ),
    "buckets": f"sum by (le) (increase({DURATION}_bucket{{$selector}}[$window]))",
}


def color_selector(color: str) -> str:
    """The label matchers of one colour's series in APP_QUERIES."""
    return f'color="{color}"'
