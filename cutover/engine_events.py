"""What one `pulumi` command did (cutover/workspace.py runs them): its output and exit code, and
for a preview, an update or a destroy the engine's events as its event log has them: the steps,
the policy violations, the stack's outputs before and after. Never parsed from its text output.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Violation:
    """One policy violation as the engine reported it."""

    policy: str
    level: str
    """mandatory (the update was refused) or advisory (a warning)."""
    message: str
    resource: str
    """URN of the resource the policy judged."""


@dataclass
class EngineEvents:
    """The engine events of one preview, update or destroy, as its event log has them (JSON)."""

    events: list[dict] = field(default_factory=list)

    @property
    def violations(self) -> list[Violation]:
        return [
            Violation(
                policy=e.get("policyName", ""),
                level=e.get("enforcementLevel", ""),
                # The engine puts the policy's description before the violation itself.
                message=(e.get("message") or "").strip().split("\n", 1)[-1],
                resource=e.get("resourceUrn") or "",
            )
            for e in (ev.get("policyEvent") for ev in self.events)
            if e
        ]

    def records(self) -> list[dict[str, str]]:
        """The violations as a flip log stores them."""
        return [
            {"policy": v.policy, "level": v.level, "message": v.message} for v in self.violations
        ]

    @property
    def stack_outputs(self) -> tuple[dict, dict]:
        """The stack's outputs before and after the run (both empty if it reported none)."""
        for ev in reversed(self.events):
            meta = (ev.get("resOutputsEvent") or {}).get("metadata") or {}
            if meta.get("type") == "pulumi:pulumi:Stack":
                states = (meta.get("old") or {}, meta.get("new") or {})
                return tuple(state.get("outputs") or {} for state in states)
        return {}, {}

    @property
    def steps(self) -> set[tuple[str, str]]:
        """(operation, URN) of every resource the run changes (or, in a preview, would change);
        unchanged and read-only resources are left out."""
        found = set()
        for ev in self.events:
            meta = (ev.get("resourcePreEvent") or {}).get("metadata") or {}
            op = meta.get("op")
            if op not in (None, "same", "read", "refresh"):
                found.add((op, meta.get("urn", "")))
        return found


@dataclass
class Result:
    """What one command did: its output, exit code and engine events."""

    command: str
    """As a person would type it."""
    stdout: str
    stderr: str
    returncode: int
    outcome: EngineEvents = field(default_factory=EngineEvents)


class PulumiError(RuntimeError):
    def __init__(self, result: Result) -> None:
        self.result = result
        self.outcome = result.outcome
        super().__init__(
            f"`{result.command}` failed (exit {result.returncode}):\n{self.output.strip()}"
        )

    @property
    def output(self) -> str:
        return "\n".join(s for s in (self.result.stdout, self.result.stderr) if s)

    @property
    def summary(self) -> str:
        """The engine's error lines (not the diff that precedes them), for a flip log."""
        lines = [ln.strip() for ln in self.output.splitlines() if ln.strip().startswith("error:")]
        return "\n".join(lines) or self.output.strip()[-500:]


class NoSuchStack(LookupError):
    def __init__(self, stack: str) -> None:
        self.stack = stack
        super().__init__(f'no stack named "{stack}"')


def read_events(path: str) -> list[dict]:
    events = []
    try:
        with open(path) as f:
            for line in f:
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line))
    except OSError:
        pass
    return events
