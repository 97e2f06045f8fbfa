"""The flip record's provider: what makes a record, and what never does; with a data stack, what
each side of the change needed of it (`schema`)."""

from __future__ import annotations

import pytest

from bluegreen import flip_evidence
from components.evidence import EvidenceProvider
from tests.support.evidence_cases import BLUE, GREEN, props

NEEDS = {"blue": "0001_items", "green": "0002_items_name"}
APPLIED = ["0001_items", "0002_items_name"]


def test_only_moving_traffic_or_a_note_is_a_change(tmp_path):
    p = EvidenceProvider()
    olds = {**props(BLUE, tmp_path), "records": [{"to": BLUE}]}
    assert not p.diff("evidence", olds, props(BLUE, tmp_path)).changes
    # A new version deployed to the idle arm moves no traffic: no record.
    assert not p.diff(
        "evidence", olds, {**props(BLUE, tmp_path), "versions": {"blue": "v1", "green": "v3"}}
    ).changes
    assert p.diff("evidence", olds, props(GREEN, tmp_path)).changes
    assert p.diff("evidence", olds, props(BLUE, tmp_path, {"amend": {"outcome": "held"}})).changes


@pytest.fixture
def no_git(monkeypatch):
    """The record's commit without a `git` process (a unit test starts none)."""
    monkeypatch.setattr(flip_evidence, "git_commit", lambda path: "abc1234")


def test_with_a_data_stack_a_record_says_what_each_side_needs(tmp_path, no_git):
    p = EvidenceProvider()
    schema = {"arms": NEEDS, "applied": APPLIED}
    olds = {**props(BLUE, tmp_path), "schema": schema, "records": [{"to": BLUE}]}
    news = {**props(GREEN, tmp_path), "schema": schema}
    # What the edge read of the data stack is no change by itself.
    assert not p.diff("evidence", olds, {**props(BLUE, tmp_path), "schema": {}}).changes
    record = p.update("evidence", olds, news).outs["records"][-1]
    assert record["schema"] == {
        "from": {"color": "blue", "needs": "0001_items"},
        "to": {"color": "green", "needs": "0002_items_name"},
        "applied": APPLIED,
    }
    assert (record["from"], record["to"]) == (BLUE, GREEN)
    # The stack's first record moved traffic from nothing.
    first = p.create({**props(GREEN, tmp_path), "schema": schema}).outs["records"][0]
    assert first["schema"]["from"] is None
    assert first["schema"]["to"] == {"color": "green", "needs": "0002_items_name"}


def test_without_a_data_stack_a_record_has_no_schema(tmp_path, no_git):
    p = EvidenceProvider()
    olds = {**props(BLUE, tmp_path), "records": []}
    [record] = p.update("evidence", olds, props(GREEN, tmp_path)).outs["records"]
    assert "schema" not in record and record["to"] == GREEN


def test_the_sides_are_the_colours_whose_share_fell_and_rose():
    canary = {"activeColor": "green", "weights": {"blue": 75, "green": 25}}
    half = {"activeColor": "green", "weights": {"blue": 50, "green": 50}}
    stateless = {"blue": None, "green": "0002_items_name"}
    step = flip_evidence.schema_record(canary, half, stateless, APPLIED)
    assert step["from"] == {"color": "blue", "needs": None}  # a release that keeps no data
    assert step["to"] == {"color": "green", "needs": "0002_items_name"}
    back = flip_evidence.schema_record(half, BLUE, NEEDS, APPLIED)
    assert (back["from"]["color"], back["to"]["color"]) == ("green", "blue")
    # Only the pointer moved (the same weights): the colours that were and are active.
    swapped = {"activeColor": "blue", "weights": {"blue": 50, "green": 50}}
    same = flip_evidence.schema_record(half, swapped, NEEDS, APPLIED)
    assert (same["from"]["color"], same["to"]["color"]) == ("green", "blue")
