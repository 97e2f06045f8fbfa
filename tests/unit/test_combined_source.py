"""A wave of several ALBs (aws, bluegreen:edges) is read from each edge's own CloudWatch metrics,
as one source (cutover/sources/combined.py): counts add up, and a slow edge's p95 is never hidden
behind a fast one's."""

from __future__ import annotations

import pytest

from cutover.sources import factory
from cutover.sources.combined import CombinedSource, joined
from cutover.sources.interface import ColorStats


def alb(region: str, n: int) -> dict:
    return {
        "region": region,
        "loadBalancer": f"app/live-{n}/0123456789abcdef",
        "targetGroups": {c: f"targetgroup/{c}-{n}/0123456789abcdef" for c in ("blue", "green")},
    }


METRICS = {"source": "cloudwatch", **alb("eu-west-1", 1)}
METRICS["sites"] = {
    "eu": alb("eu-west-1", 1),
    "us": alb("us-east-1", 2),
    "ap": alb("ap-south-1", 3),
}


@pytest.fixture(autouse=True)
def _no_instance_metadata(monkeypatch):
    """Making a client must not ask an instance's metadata service (there is none)."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_a_wave_reads_each_of_its_albs_in_its_own_region():
    source = factory.from_output(METRICS, {}, ["us", "ap"])
    assert isinstance(source, CombinedSource)
    assert [(p.region, p.load_balancer) for p in source.parts] == [
        ("us-east-1", "app/live-2/0123456789abcdef"),
        ("ap-south-1", "app/live-3/0123456789abcdef"),
    ]
    one = factory.from_output(METRICS, {}, ["us"])
    assert (one.region, one.load_balancer) == ("us-east-1", "app/live-2/0123456789abcdef")


def test_without_a_wave_every_alb_is_read_and_one_alb_as_before():
    source = factory.from_output(METRICS, {})  # the deploy workflow's watch: every edge
    assert [p.region for p in source.parts] == ["eu-west-1", "us-east-1", "ap-south-1"]
    one = factory.from_output({k: v for k, v in METRICS.items() if k != "sites"}, {})
    assert (one.region, one.load_balancer) == ("eu-west-1", "app/live-1/0123456789abcdef")


def test_counts_add_up_and_the_slowest_p95_stands_for_the_wave():
    fast = ColorStats(requests=900, errors=1, p95_ms=4.0)
    slow = ColorStats(requests=100, errors=3, p95_ms=40.0)
    both = joined([fast, slow])
    assert (both.requests, both.errors, both.p95_ms, both.latencies) == (1000, 4, 40.0, None)


def test_latencies_join_where_every_edge_has_them():
    a = ColorStats(requests=2, p95_ms=2.0, latencies=(1.0, 2.0))
    b = ColorStats(requests=1, p95_ms=9.0, latencies=(9.0,))
    assert joined([a, b]).latencies == (1.0, 2.0, 9.0)
    assert joined([a, ColorStats()]).latencies == (1.0, 2.0)  # an edge that served nothing
