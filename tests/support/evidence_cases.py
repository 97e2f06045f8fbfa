"""What tests/unit/test_evidence.py and tests/integration/test_evidence.py share."""

from __future__ import annotations

BLUE = {"activeColor": "blue", "weights": {"blue": 100, "green": 0}}


GREEN = {"activeColor": "green", "weights": {"blue": 0, "green": 100}}


def props(traffic: dict, tmp_path, note: dict | None = None) -> dict:
    return {
        "traffic": traffic,
        "versions": {"blue": "v1", "green": "v2"},
        "note": note,
        "after": "x",
        "root": str(tmp_path),
        "file": str(tmp_path / "audit" / "flips.jsonl"),
    }
