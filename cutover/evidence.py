"""Evidence of every flip and rollback: the flip log, the commit it ran from, the gate's figures."""

from __future__ import annotations

import json
import os
import tempfile

from bluegreen.config import RUN_ROOT
from bluegreen.evidence import SMOKE_REPORT_ENV, git_commit, now, read_report, user_at_host
from cutover.metrics import ColorStats

# The policy pack writes the figures of its smoke sample to the file this names (its smoke.py):
# the flip's evidence carries the gate's own figures and nobody samples the arms twice.


class FlipLog:
    """`.bluegreen/flips.jsonl` in the project: one JSON line per event of a flip or rollback."""

    def __init__(self, project_dir: str) -> None:
        self.project_dir = project_dir
        self.path = os.path.join(project_dir, RUN_ROOT, "flips.jsonl")

    def record(self, **fields) -> dict:
        entry = {
            "time": now(),
            "who": user_at_host(),
            "commit": git_commit(self.project_dir),
            **fields,
        }
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
        return entry

    def last(self, n: int) -> list[dict]:
        try:
            with open(self.path) as f:
                return [json.loads(line) for line in f.readlines()[-n:]]
        except OSError:
            return []


class SmokeReport:
    """A file the policy pack writes its smoke sample's figures to, removed on leaving."""

    def __enter__(self) -> SmokeReport:
        fd, self.path = tempfile.mkstemp(prefix="bluegreen-smoke-", suffix=".json")
        os.close(fd)
        self.env = {SMOKE_REPORT_ENV: self.path}
        return self

    def figures(self) -> dict:
        """The last sample's figures (per colour p50, p95, error rate; samples; seconds)."""
        return read_report(self.path)

    def __exit__(self, *exc) -> None:
        os.unlink(self.path)


def seen(stats: dict[str, ColorStats]) -> dict:
    """What a hold saw, per colour, as the flip log stores it."""
    return {
        c: {
            "requests": s.requests,
            "errors": s.errors,
            "p95Ms": round(s.p95_ms, 2) if s.p95_ms is not None else None,
        }
        for c, s in stats.items()
    }
