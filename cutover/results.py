"""What an operation of the cutover ended in: a `Report` with its `Outcome`, which the `bluegreen`
command turns into its exit code in one place (cutover/cli.py `EXIT_CODES`).

Each operation (cutover/flip.py, rolling_back.py, shadow.py, watching.py, status.py, queue.py,
commit_rollback.py) says what happened as an outcome, and the sentences for the operator as it
goes (`Operator.out`); none of them knows an exit code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cutover.hold import Verdict


class Outcome(enum.Enum):
    DONE = "done"
    """It did what was asked: the flip finished, the traffic went back, the hold held."""
    UNCHANGED = "unchanged"
    """Nothing to do: the edge already serves it, or the traffic did not move since."""
    REFUSED = "refused"
    """Refused before anything changed: the flip's metrics source does not answer or its colour
    did not hold on shadow traffic; commit-rollback's checks of the revert."""
    ROLLED_BACK = "rolled back"
    """A hold broke (a breach, or too little to judge) and the traffic went back."""
    NOT_HELD = "not held"
    """The idle colour did not hold on mirrored traffic (shadow); nobody was moved."""
    FAILED = "failed"
    """A step failed (a `pulumi` update or preview, git, a rollback's own update)."""
    NOT_READY = "not ready"
    """The edge is not in a state the command acts on: no active colour yet, a canary step in
    progress, nothing mirrored."""
    BAD_INPUT = "bad input"
    """What the command names is not there (a dead letter's receipt)."""
    UNREACHABLE = "unreachable"
    """What the command must read did not answer: the metrics source, the queue's store."""
    INTERRUPTED = "interrupted"
    """Ctrl-C."""


@dataclass(frozen=True)
class Report:
    """How an operation ended, and what a caller needs of it."""

    outcome: Outcome
    reason: str | None = None
    """Why, when it did not end DONE, as a sentence (the operator has been told already)."""
    verdict: Verdict | None = None
    """The last hold's verdict (flip, watch, shadow), if a hold ran."""
