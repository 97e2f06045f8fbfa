"""`bluegreen rollback`, and `update_back`: the update that moves traffic back, which a flip that
did not finish and a watch whose hold broke use too."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bluegreen import probe
from bluegreen.config import COLORS, other
from bluegreen.live_stack import POINTER, LiveOutputs
from cutover import flip_log
from cutover.results import Outcome, Report
from cutover.workspace import PulumiError, Workspace

if TYPE_CHECKING:
    from cutover.operator import Operator

# The policy pack's name for its smoke test. The pack stands alone, so the name is pinned by a
# unit test (tests/unit/test_layers.py) rather than imported.
SMOKE_POLICY = "bluegreen-smoke-test"


def rollback(op: Operator, reason: str = "operator request") -> Report:
    """Flip back to the other colour as fast as safely possible and report time to recover.

    The shortest path to traffic back: the pointer the edge stack's file names (nothing read
    from the state first), one config write and one update, its gate only checking that the
    colour going back into service is ready. Everything else comes after."""
    start = time.perf_counter()
    current = op.file_values(POINTER)[POINTER]
    if current not in COLORS:
        op.out("rollback: the live stack has no active colour yet; nothing to roll back")
        return Report(Outcome.NOT_READY, "the live stack has no active colour yet")
    # Mid-canary too: the other colour is the one that had all the traffic before.
    target = other(current)
    op.set_config(op.pointer(target, None))
    ended = update_back(op, current, target, reason, None, start, command="rollback")
    phase = "failed" if ended is Outcome.FAILED else "rolled-back"
    op.notify("rollback", phase, {"from": current, "to": target, "reason": reason})
    return Report(ended, reason if ended is Outcome.FAILED else None)


def update_back(
    op: Operator,
    current: str | None,
    target: str,
    reason: str,
    url: str | None,
    start: float | None = None,
    amend: dict | None = None,
    command: str = "rollback after a hold",
) -> Outcome:
    """The update that moves traffic back to `target`, its config already written. The arm
    going back into service must still be ready, but the side-by-side comparison is skipped:
    the other arm is the one being escaped. On failure the config matches the edge again.
    Time to recover counts from `start` (default: now) until `target` answers at `url` (when
    known; else until the update, which confirms that it answers, returns). The record of
    the change it undoes gets `amend` (the hold that broke); its own, the reason. The flip
    log is written once the traffic is back. DONE when the traffic moved back, UNCHANGED when
    the edge already served `target`, FAILED when the update failed."""
    fields = {"from": current, "to": target, "reason": reason}
    start = start or time.perf_counter()
    done = False
    try:
        with _FirstAnswer(url, target, start) as first, _rollback_gate(op.ws) as gate:
            noted = {"command": f"bluegreen {command}", "reason": reason}
            result = flip_log.noting(op.ws, amend, noted).up(op.stack, policy_config=gate)
            wall = time.perf_counter() - start
            ttr = first.wait(10) or wall
        done = True
    except PulumiError as err:
        op.log.record(
            event="rollback",
            phase="failed",
            **fields,
            violations=err.outcome.records(),
            error=err.summary,
        )
        op.out(str(err))
        return Outcome.FAILED
    finally:
        if not done:
            op.match_edge()
    before, after = (LiveOutputs.from_outputs(o) for o in result.outcome.stack_outputs)
    moved = before.traffic != after.traffic
    op.log.record(
        event="rollback",
        phase="done",
        outcome="ok" if moved else "unmoved",
        **fields,
        seconds=round(wall, 2),
        timeToRecover=round(ttr, 2),
    )
    if not moved:
        op.out(f"the edge already served {target}: nothing moved (update {wall:.2f} s)")
        return Outcome.UNCHANGED
    op.out(
        f"rolled back {current} -> {target}: {target} answering after {ttr:.2f} s "
        f"(update {wall:.2f} s)"
    )
    return Outcome.DONE


class _FirstAnswer:
    """Notes when `color` first answers at `url`, on a thread stopped and joined on leaving."""

    def __init__(self, url: str | None, color: str, start: float) -> None:
        self.url, self.color, self.start = url, color, start
        self.seconds: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _FirstAnswer:
        if self.url:
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            if probe.request(self.url, timeout=1).color == self.color:
                self.seconds = time.perf_counter() - self.start
                return
            self._stop.wait(0.01)

    def wait(self, timeout: float) -> float | None:
        if self._thread.is_alive():
            self._thread.join(timeout)
        return self.seconds

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


@contextlib.contextmanager
def _rollback_gate(ws: Workspace) -> Iterator[str | None]:
    """The shipped policy config with the side-by-side comparison off, as a temporary file."""
    if not ws.policy_pack:
        yield None
        return
    with open(os.path.join(ws.project_dir, ws.policy_pack, "config.json")) as f:
        cfg = json.load(f)
    cfg.setdefault(SMOKE_POLICY, {})["compareArms"] = False
    with tempfile.NamedTemporaryFile("w", prefix="bluegreen-rollback-", suffix=".json") as f:
        json.dump(cfg, f)
        f.flush()
        yield f.name
