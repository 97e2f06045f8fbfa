"""The edge's metrics keys, which every platform reads the same way: which source the hold after a
flip reads (bluegreen:metrics, one of the platform's own, the first being its default), and the
PromQL templates of a Prometheus source (bluegreen:promqlRequests, promqlErrors, promqlP95,
promqlBuckets, over
the platform's conventional metrics by default). The adapter writes what it read into the edge
stack's `metrics` output, which the `bluegreen` command reads (cutover/sources/)."""

from __future__ import annotations

import string
import urllib.parse
from collections.abc import Mapping, Sequence

from bluegreen.reader import Reader

QUERY_KEYS = {
    "requests": "promqlRequests",
    "errors": "promqlErrors",
    "p95": "promqlP95",
    "buckets": "promqlBuckets",
}


def source(read: Reader, platform: str, offered: Sequence[str]) -> str:
    """bluegreen:metrics: one of `offered`, the platform's sources; not set, the first."""
    value = read.optional("metrics")
    if value is None:
        return offered[0]
    names = " or ".join(f'"{o}"' for o in offered)
    return read.choice("metrics", offered, f"{names} on the {platform} platform", value)


USES = {
    "requests": {"selector"},
    "errors": {"selector"},
    "p95": {"selector", "window"},
    "buckets": {"selector", "window"},
}
EXAMPLES = {
    "requests": "sum(http_requests_total{$selector})",
    "errors": 'sum(http_requests_total{$selector,code=~"5.."})',
    "p95": "histogram_quantile(0.95, sum by (le) (rate(h_bucket{$selector}[$window])))",
    "buckets": "sum by (le) (increase(h_bucket{$selector}[$window]))",
}


URL_ALLOWED = (
    "an http:// or https:// URL of a Prometheus (its HTTP API's base), "
    "such as http://prometheus.example.com:9090"
)


def prometheus_url(read: Reader, required_why: str | None = None) -> str | None:
    """bluegreen:prometheusUrl: the Prometheus the hold queries, an http(s) URL. Not set: None,
    or a problem when `required_why` says why this platform needs one."""
    value = read.optional("prometheusUrl")
    if value is None:
        if required_why is not None:
            read.missing("prometheusUrl", required_why)
        return None
    try:
        parts = urllib.parse.urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    if (
        parts is None
        or not port_ok
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or any(ch.isspace() or ch in "\"'<>\\" for ch in value)
    ):
        read.problem("prometheusUrl", value, URL_ALLOWED)
    return value.rstrip("/")


def queries(read: Reader, defaults: Mapping[str, str]) -> dict[str, str]:
    """The PromQL templates, each the stack's key if set, else the platform's convention.
    requests and errors are counters as they stand, over $selector (the hold takes their growth);
    p95 is seconds over $window too."""
    found = {}
    for name, key in QUERY_KEYS.items():
        value = read.optional(key)
        if value is None:
            found[name] = defaults[name]
            continue
        template = string.Template(value)
        used = set(template.get_identifiers()) if template.is_valid() else {"?"}
        if used != USES[name]:
            needs = " and ".join("$" + u for u in sorted(USES[name]))
            read.problem(
                key,
                value,
                f"a PromQL template using exactly {needs} ($selector: the colour's label "
                f"matchers; $window: a range), e.g. {EXAMPLES[name]}",
            )
        found[name] = value
    return found


def prometheus_output(url: str, queries: Mapping[str, str], selectors: Mapping[str, str]) -> dict:
    """The edge stack's `metrics` output for a Prometheus source."""
    return {
        "source": "prometheus",
        "url": url,
        "queries": dict(queries),
        "selectors": dict(selectors),
    }
