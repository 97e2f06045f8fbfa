"""Evidence of every flip and rollback: the flip log, the commit it ran from, the gate's figures."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING

from bluegreen.config import RUN_ROOT
from bluegreen.flip_evidence import (
    NOTE_ENV,
    RECORD_TYPE,
    SMOKE_REPORT_ENV,
    append_to_file,
    git_commit,
    now,
    read_report,
    user_at_host,
)
from cutover.sources.interface import ColorStats

if TYPE_CHECKING:
    from cutover.hold import Verdict
    from cutover.workspace import Workspace

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


def hold_note(verdict: Verdict | None, outcome: str) -> dict | None:
    """What a record of a traffic change gets from the hold that watched it."""
    if verdict is None:
        return None
    return {
        "hold": {
            "verdict": verdict.outcome,
            "reason": verdict.reason,
            "seconds": round(verdict.seconds, 1),
            "seen": seen(verdict.stats),
            **({"judge": verdict.decision.record()} if verdict.decision else {}),
        },
        "outcome": outcome,
    }


def noting(ws: Workspace, amend: dict | None, record: dict | None) -> Workspace:
    """`ws` for an update whose evidence gets `amend` (into the last record) and `record` (into
    the one it appends, if it moves traffic); bluegreen/flip_evidence.py."""
    note = {k: v for k, v in (("amend", amend), ("record", record)) if v}
    return ws.with_env({NOTE_ENV: json.dumps(note)}) if note else ws


class NotAmended(RuntimeError):
    """The newest evidence record was not amended; the message says why."""


def amend_last(ws: Workspace, stack: str, amend: dict, belongs: Callable[[dict], bool]) -> dict:
    """Merge `amend` (a hold's verdict) into the newest record of the stack's evidence, in its
    state, and return the record; `NotAmended` says why not.

    Not an update: an update of the edge stack runs the program, its providers and StackReference
    reads again, as long as the flip's own update, to change one output. This takes the state
    (`pulumi stack export`), changes that record where the state keeps it (the evidence
    resource's `records` and every output that is the same list, the stack's `evidence`) and puts
    it back (`pulumi stack import`, which locks the stack). Only outputs change, never an input,
    so the next preview still says "no changes". `belongs` must recognise the record as the
    change the hold watched: if the traffic moved again since, that newer record is left alone.
    """
    deployment = ws.export(stack)
    body = deployment.get("deployment") or {}
    if body.get("pending_operations"):
        raise NotAmended(f"an update of stack {stack} is in progress")
    resources = body.get("resources") or []
    found = [r for r in resources if r.get("type") == RECORD_TYPE]
    records = (found[0].get("outputs") or {}).get("records") if len(found) == 1 else None
    if not isinstance(records, list) or not records or not isinstance(records[-1], dict):
        raise NotAmended(f"stack {stack} has no evidence record to amend")
    if not belongs(records[-1]):
        raise NotAmended("the traffic moved again since: the newest record is another change's")
    amended = [*records[:-1], {**records[-1], **amend}]
    for resource in resources:
        outputs = resource.get("outputs") or {}
        for key, value in outputs.items():
            if value == records:
                outputs[key] = amended
    ws.import_deployment(stack, deployment)
    append_to_file(found[0]["outputs"].get("file"), [{**amended[-1], "amended": True}])
    return amended[-1]
