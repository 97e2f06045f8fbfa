"""The metrics source the edge stack's `metrics` output names (cutover/sources/__init__.py lists
them)."""

from __future__ import annotations

from collections.abc import Mapping

from cutover.sources.access_log import AccessLogSource
from cutover.sources.interface import MetricsSource, Unreachable
from cutover.sources.prometheus import PrometheusSource


def from_output(metrics: Mapping | None, addresses: Mapping[str, str]) -> MetricsSource:
    """The source the edge stack's `metrics` output names. `addresses` maps each arm node's
    host:port to its colour (the access log names upstreams by address)."""
    if not metrics:
        raise Unreachable(
            "the live stack exports no `metrics` output: run `pulumi up -s live` once with this "
            "version of bluegreen so the edge says where its metrics are"
        )
    kind = metrics.get("source")
    if kind == "accessLog":
        return AccessLogSource(metrics["path"], addresses)
    if kind == "prometheus":
        return PrometheusSource(metrics["url"], metrics["queries"], metrics["selectors"])
    if kind == "cloudwatch":
        # boto3 only for a stack that reads it
        from cutover.sources.cloudwatch import CloudWatchSource

        return CloudWatchSource.from_output(metrics)
    raise Unreachable(f"the live stack's metrics source {kind!r} is not one this command reads")
