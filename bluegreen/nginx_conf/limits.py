"""The edge-wide request rate limit and connection cap (bluegreen:rateLimit, connectionLimit):
zones keyed by `$bluegreen_limit`, which switch.js leaves empty (no limit) outside the hold's
window when the limits apply only then."""

from __future__ import annotations

from bluegreen.config import Backpressure


def limit_zones(b: Backpressure) -> str:
    """The zones, at the http level: 429 past the rate, 503 past the cap."""
    rate = (
        f"    limit_req_zone $bluegreen_limit zone=bluegreen_rate:1m rate={int(b.rate)}r/s;\n"
        "    limit_req_status 429;\n"
        if b.rate
        else ""
    )
    connections = (
        "    limit_conn_zone $bluegreen_limit zone=bluegreen_conn:1m;\n    limit_conn_status 503;\n"
        if b.connections
        else ""
    )
    return rate + connections


def limit_directives(b: Backpressure) -> str:
    """The limits on users' requests to the arms."""
    # nginx refuses `burst=0`: no burst is said by leaving it out.
    burst = f" burst={int(b.burst)}" if b.burst else ""
    return (f"            limit_req zone=bluegreen_rate{burst} nodelay;\n" if b.rate else "") + (
        f"            limit_conn bluegreen_conn {int(b.connections)};\n" if b.connections else ""
    )
