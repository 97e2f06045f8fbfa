"""The metrics source the edge stack's `metrics` output names (cutover/sources/__init__.py lists
them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cutover.sources.access_log import AccessLogSource
from cutover.sources.combined import CombinedSource
from cutover.sources.interface import MetricsSource, Unreachable
from cutover.sources.prometheus import PrometheusSource


def from_output(
    metrics: Mapping | None, addresses: Mapping[str, str], sites: Sequence[str] | None = None
) -> MetricsSource:
    """The source the edge stack's `metrics` output names. `addresses` maps each arm node's
    host:port to its colour (the access log names upstreams by address). `sites`: only the
    traffic of these edges (a wave of a flip in waves), where the source tells edges apart (the
    access logs and CloudWatch, per ALB, do; Prometheus, scraping the arms, sees every edge's
    traffic)."""
    if not metrics:
        raise Unreachable(
            "the live stack exports no `metrics` output: run `pulumi up -s live` once with this "
            "version of bluegreen so the edge says where its metrics are"
        )
    kind = metrics.get("source")
    if kind == "accessLog":
        logs = metrics.get("sites") or {}
        if sites and logs:
            return AccessLogSource([logs[site] for site in sites if site in logs], addresses)
        return AccessLogSource(metrics.get("paths") or metrics["path"], addresses)
    if kind == "prometheus":
        return PrometheusSource(metrics["url"], metrics["queries"], metrics["selectors"])
    if kind == "cloudwatch":
        # boto3 only for a stack that reads it
        from cutover.sources.cloudwatch import CloudWatchSource

        albs = metrics.get("sites") or {}
        if albs:  # each edge is an ALB of its own, in its region: a wave's, or all of them
            chosen = [site for site in (sites or albs) if site in albs]
            parts = [CloudWatchSource.from_output(albs[site]) for site in chosen]
            return parts[0] if len(parts) == 1 else CombinedSource(parts)
        return CloudWatchSource.from_output(metrics)
    raise Unreachable(f"the live stack's metrics source {kind!r} is not one this command reads")
