"""The watch on the CI path (.github/workflows/deploy.yml): what the edge served before an update,
whether the update moved traffic, and the hold's verdict as a file; the commit that makes the
repository agree with the stack after a rollback is cutover/commit_rollback.py.

    bluegreen status --json > before.json          # before `pulumi up -s live`
    bluegreen watch --hold 2m --if-moved-since before.json --verdict-file verdict.json
    bluegreen commit-rollback --verdict-file verdict.json   # only when the watch rolled back

A rollback during the watch writes the pointer back in Pulumi.<stack>.yaml (`pulumi config set`)
and updates the edge: the stack runs the old colour while the default branch still names the new
one. `commit-rollback` commits that one-line revert and pushes it; when the push is refused
(branch protection), it pushes a branch, opens a pull request and fails loudly, since the
repository stays wrong until somebody merges it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from bluegreen.config import COLORS, other
from bluegreen.live_stack import ACTIVE_COLOR, WEIGHTS, ArmOutputs, LiveOutputs

ROLLED_BACK = ("breach", "inconclusive")
"""The verdicts on which the watch rolls back."""


class BadFile(ValueError):
    """A file given on the command line that cannot be used; the message says why."""


# --- before and after: did the update move traffic? -------------------------------------------


def snapshot(stack: str, live: LiveOutputs, arms: Mapping[str, tuple[str, ArmOutputs]]) -> dict:
    """What `bluegreen status --json` prints: the edge's traffic and the arms' versions.
    `arms` maps each colour to (its stack, its outputs)."""
    return {
        "stack": stack,
        **live.served(),
        "arms": {c: {"stack": s, "version": out.version} for c, (s, out) in arms.items()},
    }


def moved(before: LiveOutputs, now: LiveOutputs) -> bool:
    """Whether the traffic (activeColor, weights) differs between `before` (a status --json
    record) and `now` (the edge stack's outputs)."""
    return before.traffic != now.traffic


def read_before(path: str) -> LiveOutputs:
    """A file `bluegreen status --json` wrote; `BadFile` says what is wrong with it."""
    data = _read_json(path, "a file `bluegreen status --json` wrote")
    missing = [k for k in (ACTIVE_COLOR, WEIGHTS) if k not in data]
    if missing:
        raise BadFile(
            f"must be a file `bluegreen status --json` wrote; {path!r} has no "
            + " or ".join(missing)
        )
    if data[WEIGHTS] is not None and not isinstance(data[WEIGHTS], dict):
        raise BadFile(
            f"must be a file `bluegreen status --json` wrote; the weights in {path!r} are "
            f"{data[WEIGHTS]!r}, not an object"
        )
    return LiveOutputs.from_outputs(data)


# --- the verdict file ------------------------------------------------------------------------


def verdict_record(
    stack: str,
    watched: str | None,
    outcome: str,
    reason: str | None,
    figures: Mapping | None,
    seconds: float | None,
    rolled_back: bool,
) -> dict:
    """The verdict as `watch --verdict-file` writes it. `from`/`to` are the rollback's (the
    watched colour and the one traffic went back to) after a breach or an inconclusive hold,
    None otherwise; `rolledBack` says whether the edge now serves `to`."""
    back = outcome in ROLLED_BACK and watched in COLORS
    return {
        "stack": stack,
        "outcome": outcome,
        "reason": reason,
        "watched": watched,
        "from": watched if back else None,
        "to": other(watched) if back else None,
        "rolledBack": rolled_back,
        "figures": dict(figures or {}),
        "seconds": round(seconds, 2) if seconds is not None else None,
    }


def write_verdict(path: str, record: Mapping) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def read_verdict(path: str) -> dict:
    """A verdict file of a watch that rolled back; `BadFile` says what is wrong with it."""
    data = _read_json(path, "a verdict file `bluegreen watch --verdict-file` wrote")
    outcome = data.get("outcome")
    if outcome not in ROLLED_BACK or not data.get("rolledBack"):
        raise BadFile(
            f"must be the verdict of a watch that rolled back; {path!r} has outcome "
            f"{outcome!r} and rolledBack {data.get('rolledBack')!r}: there is no rollback to "
            "commit"
        )
    for key in ("from", "to"):
        if data.get(key) not in COLORS:
            raise BadFile(
                f"must be a verdict naming the colours of the rollback; {key!r} in {path!r} is "
                f"{data.get(key)!r}, not one of {', '.join(COLORS)}"
            )
    if data.get("figures") is not None and not isinstance(data["figures"], dict):
        raise BadFile(f"must be a verdict file; the figures in {path!r} are not an object")
    return data


def _read_json(path: str, what: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as err:
        raise BadFile(f"must be {what}; cannot read {path!r}: {err.strerror}") from None
    except ValueError as err:
        raise BadFile(f"must be {what}; {path!r} is not JSON ({err})") from None
    if not isinstance(data, dict):
        raise BadFile(f"must be {what}; {path!r} holds {type(data).__name__}, not an object")
    return data
