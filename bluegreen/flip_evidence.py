"""The evidence of a traffic change, as the live stack's own state keeps it: shared names and the
record's shape, for the program that writes it and the command that reads and annotates it.

Each update that moves traffic (a flip, a canary step, a rollback; by the `bluegreen` command, by
CI, or a bare `pulumi up -s live`) appends one record to the edge stack's `evidence` output:

    {"time", "who", "where", "commit", "from": {"activeColor", "weights"}, "to": {...},
     "versions": {"blue", "green"}, "schema": {...}, "smoke": {...}, "hold": {...}, "outcome": ...}

`schema` only where the edge read a data stack (`schema_record`): which release traffic left and
which it went to, with the revision each needs, and what the database had applied; the policy
pack's rollback window for a contract reads it from the newest record.

`who` and `where` come from the environment of the update (GitHub Actions' actor and run URL in
CI; user@host otherwise). The gate's smoke figures are read from the file $BLUEGREEN_SMOKE_REPORT
names, when set (the command and the deploy workflow set it). The hold's verdict comes after the
update: a rollback's update carries it in $BLUEGREEN_EVIDENCE (JSON), and a hold that held is
written into the record in the stack's state by the command (cutover/flip_log.py `amend_last`).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import time
from collections.abc import Mapping

SMOKE_REPORT_ENV = "BLUEGREEN_SMOKE_REPORT"
"""A file the policy pack writes its smoke sample's figures to (policy/bluegreen_policy/smoke.py;
the pack stands alone, so the name is pinned by tests/unit/test_layers.py, not imported)."""
NOTE_ENV = "BLUEGREEN_EVIDENCE"
"""JSON the command passes to an update of the edge stack: {"amend": {...}} merges into the last
record (the hold's verdict), {"record": {...}} into the record this update appends."""
RECORD_TYPE = "pulumi-python:dynamic/bluegreen:FlipRecord"
"""The type of the edge's evidence resource in the stack's state (components/evidence.py)."""
KEEP = 50
"""How many records the state keeps; the optional JSON-lines file keeps all."""
SCHEMA = "schema"
"""The record's key for the schema revisions of its change (`schema_record`)."""


def user_at_host() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def who(env: Mapping[str, str]) -> str:
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_ACTOR"):
        return f"{env['GITHUB_ACTOR']} (GitHub Actions)"
    return user_at_host()


def run_url(env: Mapping[str, str]) -> str | None:
    """The GitHub Actions run's address, from what Actions sets (None outside a run)."""
    if not (env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY")):
        return None
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"


def where(env: Mapping[str, str]) -> str:
    """The CI run's URL in CI, else the host and directory the update ran in."""
    return run_url(env) or f"{socket.gethostname()}:{os.getcwd()}"


def git_commit(path: str) -> str | None:
    """The short commit of the checkout at `path`, or None outside git."""
    try:
        out = subprocess.run(
            ["git", "-C", path, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def note(env: Mapping[str, str]) -> dict:
    """What the command asked to be written into the evidence ({} when nothing)."""
    try:
        value = json.loads(env.get(NOTE_ENV) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def read_report(path: str) -> dict:
    """The figures the policy pack wrote to `path` ({} when it wrote none)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def smoke(env: Mapping[str, str]) -> dict | None:
    """The gate's figures of this update, if $BLUEGREEN_SMOKE_REPORT names a report."""
    path = env.get(SMOKE_REPORT_ENV)
    return (read_report(path) or None) if path else None


def _moved(before: Mapping, after: Mapping, sign: int) -> str | None:
    """The colour whose share fell (sign -1) or rose (+1) between two traffic records."""
    was, now_ = before.get("weights") or {}, after.get("weights") or {}
    return next(
        (c for c in sorted({*was, *now_}) if sign * ((now_.get(c) or 0) - (was.get(c) or 0)) > 0),
        None,
    )


def schema_record(
    before: Mapping | None, after: Mapping, needs: Mapping[str, str | None], applied: list[str]
) -> dict:
    """The record's `schema`: {"from": {"color", "needs"}, "to": {...}, "applied": [...]}.

    `from` is the colour the change took traffic from (the one whose share fell; else the colour
    that was active), `to` the colour it gave traffic to (whose share rose; else the active one),
    each with the revision its release needs (null: it keeps no data); `from` is null for the
    stack's first record. `needs` maps each colour to its arm's `schemaRevision` output, and
    `applied` is what the data stack had applied when the edge read it."""

    def side(color: object) -> dict | None:
        return None if not color else {"color": color, "needs": needs.get(str(color))}

    source = target = None
    if before is not None:
        source = _moved(before, after, -1) or before.get("activeColor")
        target = _moved(before, after, +1)
    target = target or after.get("activeColor")
    return {"from": side(source), "to": side(target), "applied": [str(r) for r in applied]}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def append_to_file(path: str | None, records: list[dict]) -> None:
    """Append records to the JSON-lines evidence file (bluegreen:evidenceFile), if there is one."""
    if not path or not records:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")
