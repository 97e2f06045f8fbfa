"""The DNS health agent's judgement of the edges (agents/edge/dns_health.py): two failed checks
take an edge out of the live name's answer, two answers bring it back, and when no edge answers
the name keeps all of them (an empty answer helps nobody)."""

from __future__ import annotations

import pytest

from agents.edge import dns_health
from bluegreen.probe import Answer


@pytest.fixture
def down(monkeypatch) -> set[str]:
    """The edges (host:port) that do not answer; every other answers 200."""
    failing: set[str] = set()

    def request(url: str, timeout: float = 2.0, **_) -> Answer:
        address = url.split("/")[2]
        if address in failing:
            return Answer(url=url, status=None, seconds=timeout, error="connection refused")
        return Answer(url=url, status=200, seconds=0.001)

    monkeypatch.setattr(dns_health.probe, "request", request)
    return failing


def checker() -> dns_health.Checker:
    edges = [
        dns_health.Edge("site-a", "127.0.0.1:18080"),
        dns_health.Edge("site-b", "127.0.0.2:18080"),
        dns_health.Edge("site-c", "127.0.0.3:18080"),
    ]
    return dns_health.Checker(edges, fails=2, rises=2, timeout=0.5)


def test_an_edge_leaves_the_answer_after_two_failed_checks_and_returns_after_two_answers(down):
    c = checker()
    c.check()
    assert c.answer() == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    down.add("127.0.0.2:18080")
    c.check()
    assert c.answer() == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]  # one failure is not enough
    c.check()
    assert c.answer() == ["127.0.0.1", "127.0.0.3"]
    down.clear()
    c.check()
    assert c.answer() == ["127.0.0.1", "127.0.0.3"]  # nor is one answer
    c.check()
    assert c.answer() == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


def test_a_single_blip_resets_the_count(down):
    c = checker()
    down.add("127.0.0.3:18080")
    c.check()
    down.clear()
    c.check()
    down.add("127.0.0.3:18080")
    c.check()
    assert "127.0.0.3" in c.answer()


def test_with_every_edge_down_the_name_keeps_them_all(down):
    c = checker()
    down.update({"127.0.0.1:18080", "127.0.0.2:18080", "127.0.0.3:18080"})
    c.check()
    c.check()
    assert [e.up for e in c.edges] == [False, False, False]
    assert c.answer() == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    report = c.report("shop.example.test", c.answer())
    assert report["edges"]["site-b"]["up"] is False
