"""A `pulumi` run timed as a process, with each engine event stamped on arrival: what the benches'
breakdowns by phase are made of (bench/flip_cost.py explains the phases; bench/preview_scale.py
uses them too).

The engine's event log carries timestamps in whole seconds only, so the log is tailed while the CLI
writes it and each event is stamped with the second it arrived.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field

from cutover.workspace import PulumiError, Workspace

PHASES = (
    "CLI start",
    "pack start",
    "program start",
    "arm stack reads",
    "gate on the Edge",
    "dynamic provider start",
    "switch check/diff",
    "switch apply",
    "outputs, program exit",
    "CLI exit",
)


@dataclass
class Trace:
    """One `pulumi` run: its wall time and each engine event with the second it arrived."""

    seconds: float = math.nan
    events: list[tuple[float, dict]] = field(default_factory=list)

    def parts(self) -> list[float]:
        """Seconds at which each engine operation of the run ended (its cancelEvent), then the
        process exit: one part for a preview or an `up --skip-preview`, two for an `up` that
        previews first."""
        ends = [t for t, ev in self.events if "cancelEvent" in ev]
        return [*ends[:-1], self.seconds] if ends else [self.seconds]

    def phases(self, switch: str = ":NginxEdge") -> dict[str, float]:
        """The phases of the run's last engine operation (of an `up` that previews first: its
        update part, from the end of its preview); `switch` is the type of the edge's switch."""
        parts = self.parts()
        begin = parts[-2] if len(parts) > 1 else 0.0
        marks = [begin, *self._milestones(begin, switch), self.seconds]
        return {
            name: (b - a if a is not None and b is not None else math.nan)
            for name, a, b in zip(PHASES, marks[:-1], marks[1:], strict=True)
        }

    def _milestones(self, begin: float, switch: str) -> list[float | None]:
        def first(test) -> float | None:
            return next((t for t, ev in self.events if t > begin and test(ev)), None)

        def kind(name):
            return lambda ev: name in ev

        def policy(name, rtype):
            return lambda ev: _type(ev.get(name, {}).get("resourceUrn", "")) == rtype

        def step(name, suffix):
            meta = lambda ev: (ev.get(name) or {}).get("metadata") or {}  # noqa: E731
            return lambda ev: meta(ev).get("type", "").endswith(suffix)

        def registers(ev):
            msg = (ev.get("diagnosticEvent") or {}).get("message", "")
            return msg.startswith("registering resource")

        return [
            first(kind("policyLoadEvent")),
            first(kind("preludeEvent")),
            first(registers),
            first(policy("policyRemediateSummaryEvent", "bluegreen:index:Edge")),
            first(policy("policyAnalyzeSummaryEvent", "bluegreen:index:Edge")),
            first(step("resourcePreEvent", "pulumi:providers:pulumi-python")),
            first(step("resourcePreEvent", switch)),
            first(step("resOutputsEvent", switch)),
            first(kind("summaryEvent")),
        ]


def _type(urn: str) -> str:
    """The resource type of a URN, without its parents' types."""
    parts = urn.split("::")
    return parts[-2].split("$")[-1] if len(parts) >= 4 else ""


@dataclass
class TracedWorkspace(Workspace):
    """The tooling's Workspace, unchanged in what it runs; each run that writes an event log is
    timed as a process, and its log is tailed while the CLI writes it."""

    last: Trace = field(default_factory=Trace)

    def run(self, *args, check=True, timeout=300, env=None):
        if "--event-log" not in args:
            return super().run(*args, check=check, timeout=timeout, env=env)
        path = args[args.index("--event-log") + 1]
        cmd = ["pulumi", *args]
        trace = Trace()
        done = threading.Event()
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=self.project_dir,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        tail = threading.Thread(target=_tail, args=(path, start, trace.events, done), daemon=True)
        tail.start()
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            trace.seconds = time.perf_counter() - start
            done.set()
            tail.join(timeout=5)
        self.last = trace
        result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        if check and result.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed:\n{out}{err}")
        return result


def _tail(path: str, start: float, into: list, done: threading.Event) -> None:
    """Append (seconds since start, event) for each line of the event log as it is written."""
    f = None
    pending = ""
    try:
        while True:
            if f is None:
                try:
                    f = open(path)
                except OSError:
                    if done.is_set():
                        return
                    time.sleep(0.002)
                    continue
            line = f.readline()
            if not line and os.fstat(f.fileno()).st_size < f.tell():
                f.seek(0)  # `up` without --skip-preview truncates the log for its update part
                pending = ""
                continue
            if line:
                pending += line
                if pending.endswith("\n"):
                    try:
                        into.append((time.perf_counter() - start, json.loads(pending)))
                    except ValueError:  # read across a truncation: drop the torn line
                        pass
                    pending = ""
                continue
            if done.is_set():
                return
            time.sleep(0.002)
    finally:
        if f is not None:
            f.close()


def retry_refused(run, refusals: list[str], label: str, attempts: int = 3):
    """`run()`, again if the policy pack refused it. The smoke sample compares two arms' p95 on
    a shared 2-core machine, where noise alone can refuse a healthy flip; a refusal changes
    nothing, and is recorded in `refusals` rather than timed."""
    for attempt in range(attempts):
        try:
            return run()
        except PulumiError as err:
            if not err.outcome.violations or attempt == attempts - 1:
                raise
            refusals.append(f"{label}: {err.outcome.violations[0].message}")
