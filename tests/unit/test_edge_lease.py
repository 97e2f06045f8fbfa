"""The one writer lease every edge of several serves (platforms/local/local_sites.py
`shared_lease`, bluegreen/nginx.py `Lease.across_edges`): the same holder and fence on all of
them, nobody while they serve different colours, and a fence that never goes down."""

from __future__ import annotations

import pytest

from bluegreen import nginx
from platforms.local import local_sites
from platforms.local.local_sites import Site, shared_lease


@pytest.fixture
def sites(monkeypatch):
    """Sites whose nginx serves the given leases (None: never deployed)."""
    states: dict[str, dict | None] = {}
    monkeypatch.setattr(local_sites, "read_state", states.get)

    def make(leases: dict[str, dict | None]) -> list[Site]:
        for name, lease in leases.items():
            states[name] = lease and {"active": lease["color"] or "blue", "lease": lease}
        return [Site(n, f"127.0.0.{i + 1}", 18080, n) for i, n in enumerate(leases)]

    return make


def lease(color: str | None, fence: int) -> dict:
    return {"color": color, "fence": fence, "since": 1.0, "handover": 3, "shared": True}


def test_edges_that_already_serve_the_holder_keep_its_fence(sites):
    s = sites({"a": lease("blue", 4), "b": lease("blue", 4)})
    traffic = {"a": ("blue", {"blue": 100}), "b": ("blue", {"blue": 100})}
    assert shared_lease(s, traffic) == {"color": "blue", "fence": 4}


def test_between_waves_nobody_holds_it_under_a_new_fence_above_every_edges(sites):
    s = sites({"a": lease("blue", 4), "b": lease("blue", 6), "c": None})
    traffic = {"a": ("green", {"green": 100}), "b": ("blue", {"blue": 100}), "c": ("blue", {})}
    assert shared_lease(s, traffic) == {"color": None, "fence": 7}


def test_an_edge_added_to_the_others_gets_a_new_fence_for_all(sites):
    s = sites({"a": lease("green", 2), "b": None})
    traffic = {"a": ("green", {"green": 100}), "b": ("green", {"green": 100})}
    assert shared_lease(s, traffic) == {"color": "green", "fence": 3}


def test_an_edge_never_serves_a_fence_below_the_one_it_served():
    served = lease("blue", 9)
    got = nginx.Lease.across_edges({"color": "green", "fence": 5}, served, 3, now=100.0)
    assert (got.fence, got.shared, got.nobody) == (9, True, False)
    kept = nginx.Lease.across_edges({"color": "blue", "fence": 9}, served, 3, now=100.0)
    assert kept.since == 1.0  # the same lease: its moment stays
    nobody = nginx.Lease.across_edges({"color": None, "fence": 10}, served, 3, now=100.0)
    assert (nobody.fence, nobody.nobody, nobody.since) == (10, True, 100.0)
