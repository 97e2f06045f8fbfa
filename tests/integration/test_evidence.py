"""The flip record's provider: what makes a record, and what never does."""

from __future__ import annotations

import json

from bluegreen import flip_evidence
from components.evidence import EvidenceProvider
from tests.support.evidence_cases import BLUE, GREEN, props


def test_a_move_appends_a_record_and_a_note_amends_the_last(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_ACTOR", "merge-bot")
    monkeypatch.setenv("GITHUB_REPOSITORY", "shop/bluegreen")
    monkeypatch.setenv("GITHUB_RUN_ID", "7")
    report = tmp_path / "smoke.json"
    report.write_text(json.dumps({"samples": 300}))
    monkeypatch.setenv(flip_evidence.SMOKE_REPORT_ENV, str(report))
    p = EvidenceProvider()
    created = p.create(props(BLUE, tmp_path)).outs
    moved = p.update("evidence", created, props(GREEN, tmp_path)).outs
    first, second = moved["records"]
    assert "from" not in first and second["from"] == BLUE and second["to"] == GREEN
    assert second["who"] == "merge-bot (GitHub Actions)"
    assert second["where"] == "https://github.com/shop/bluegreen/actions/runs/7"
    assert second["smoke"] == {"samples": 300} and second["outcome"] == "applied"
    verdict = {"amend": {"outcome": "held", "hold": {"verdict": "held"}}}
    noted = p.update("evidence", moved, props(GREEN, tmp_path, verdict)).outs
    assert len(noted["records"]) == 2
    assert noted["records"][-1]["outcome"] == "held" and noted["records"][-1]["to"] == GREEN
    lines = (tmp_path / "audit" / "flips.jsonl").read_text().splitlines()
    assert [json.loads(line)["outcome"] for line in lines] == ["applied", "applied", "held"]


def test_the_state_keeps_the_last_records(tmp_path):
    p = EvidenceProvider()
    outs = p.create(props(BLUE, tmp_path)).outs
    for i in range(flip_evidence.KEEP + 5):
        outs = p.update("evidence", outs, props(GREEN if i % 2 == 0 else BLUE, tmp_path)).outs
    assert len(outs["records"]) == flip_evidence.KEEP
    assert outs["records"][-1]["to"] == (GREEN if (flip_evidence.KEEP + 4) % 2 == 0 else BLUE)
