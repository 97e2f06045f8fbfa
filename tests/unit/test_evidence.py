"""The flip record's provider: what makes a record, and what never does."""

from __future__ import annotations

from components.evidence import EvidenceProvider
from tests.support.evidence_cases import BLUE, GREEN, props


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
