"""The cutover as commands: `flip`, `rollback`, `status` (scripts/flip, rollback, status).

A flip is the procedure of the reference documents: verify pins, smoke-test the idle arm, move
the one pointer (`pulumi config set` on Pulumi.live.yaml, so a reviewer's diff is that line), hold
and watch, roll back by moving the same pointer back, and keep evidence in a flip log.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field

from bluegreen import probe
from bluegreen.config import COLORS, other
from cutover.watch import AccessLogSource, ColorStats, StopRules, hold
from cutover.workspace import PulumiError, Workspace

LIVE = "live"


def parse_duration(text: str) -> float:
    """`30`, `30s`, `2m` or `1h` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text[-1:] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--hold must be a duration such as 30s or 2m, got {text!r}"
        ) from None


def parse_steps(text: str) -> list[int]:
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        steps = []
    if not steps or steps != sorted(set(steps)) or steps[-1] != 100 or steps[0] < 1:
        raise argparse.ArgumentTypeError(
            f"--canary must be increasing percentages ending with 100, e.g. 5,25,100; got {text!r}"
        )
    return steps


@dataclass
class Operator:
    ws: Workspace
    out: callable = print
    log_path: str = ""
    records: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.log_path:
            self.log_path = os.path.join(self.ws.project_dir, ".bluegreen", "flips.jsonl")

    # --- what is there -------------------------------------------------------------------

    def live(self) -> dict:
        return self.ws.outputs(LIVE)

    def arms(self) -> dict[str, dict]:
        return {c: self.ws.outputs(c) for c in COLORS}

    def access_log(self) -> str:
        run_dir = self.ws.config_get(LIVE, "bluegreen:runDir") or os.path.join(".bluegreen", LIVE)
        return os.path.join(self.ws.project_dir, run_dir, "access.log")

    def _policy_config(self) -> str:
        return os.path.join(self.ws.project_dir, self.ws.policy_pack or "policy", "config.json")

    # --- evidence ------------------------------------------------------------------------

    def record(self, **fields) -> dict:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "who": f"{getpass.getuser()}@{socket.gethostname()}",
            "commit": _git_commit(self.ws.project_dir),
            **fields,
        }
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        with open(self.log_path, "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
        return entry

    # --- moving the pointer --------------------------------------------------------------

    def _set_pointer(self, color: str, canary: int | None) -> None:
        self.ws.config_set(LIVE, "bluegreen:activeColor", color)
        if canary is None or canary >= 100:
            self.ws.run("config", "rm", "-s", LIVE, "bluegreen:canaryWeight", check=False)
        else:
            self.ws.config_set(LIVE, "bluegreen:canaryWeight", str(canary))

    def _up(self, *extra: str, env: dict[str, str] | None = None) -> None:
        self.ws.up(LIVE, *extra, env=env)

    def _restore(self, color: str, canary: int | None, why: str) -> None:
        """Put the pointer back in Pulumi.live.yaml; nothing was applied, so no update."""
        self._set_pointer(color, canary)
        self.out(f"the pointer stays at {color}: {why}")

    def rollback(self, reason: str = "operator request") -> int:
        """Flip back to the other colour as fast as safely possible and report time to recover."""
        start = time.perf_counter()
        live = self.live()
        current = live.get("activeColor")
        if current not in COLORS:
            self.out("rollback: the live stack has no active colour yet; nothing to roll back")
            return 1
        weights = live.get("weights") or {}
        # Mid-canary too: the other colour is the one that had all the traffic before.
        target = other(current)
        self.record(
            event="rollback", phase="started", **{"from": current, "to": target}, reason=reason
        )
        url = live.get("url")
        recovered: list[float] = []
        watcher = _first_answer(url, target, start, recovered) if url else None
        self._set_pointer(target, None)
        # The arm going back into service must still be ready, but the comparison sample is
        # skipped: the other arm is the one being escaped.
        with _rollback_policy_config(self._policy_config()) as cfg:
            try:
                self.ws.run(
                    "up",
                    "-s",
                    LIVE,
                    "--yes",
                    "--skip-preview",
                    "--non-interactive",
                    "--color=never",
                    "--policy-pack",
                    self.ws.policy_pack or "policy",
                    "--policy-pack-config",
                    cfg,
                )
            except PulumiError as err:
                canary = weights.get(current) if weights.get(current, 0) < 100 else None
                self._restore(current, canary, "the rollback update failed")
                self.record(
                    event="rollback",
                    phase="failed",
                    **{"from": current, "to": target},
                    violations=err.outcome.records(),
                    error=err.summary,
                )
                self.out(str(err))
                return 1
        wall = time.perf_counter() - start
        if watcher:
            watcher.join(timeout=10)
        ttr = recovered[0] if recovered else wall
        self.record(
            event="rollback",
            phase="done",
            outcome="ok",
            **{"from": current, "to": target},
            seconds=round(wall, 2),
            timeToRecover=round(ttr, 2),
            reason=reason,
        )
        self.out(
            f"rolled back {current} -> {target}: {target} answering after {ttr:.2f} s "
            f"(update {wall:.2f} s)"
        )
        return 0

    def flip(
        self,
        target: str,
        canary: list[int] | None = None,
        hold_s: float = 30.0,
        interval: float = 1.0,
        freeze_writes: bool = False,
        rules: StopRules | None = None,
    ) -> int:
        rules = rules or StopRules()
        live = self.live()
        current = live.get("activeColor")
        arms = self.arms()
        if current == target and (live.get("weights") or {}).get(target) == 100:
            self.out(f"{target} is already live with all traffic; nothing to do")
            return 0
        steps = canary or [100]
        flip_id = uuid.uuid4().hex[:12]
        base = {
            "id": flip_id,
            "from": current,
            "to": target,
            "versions": {c: arms[c].get("version") for c in COLORS},
            "steps": steps,
        }
        self.record(event="flip", phase="started", **base)
        addresses = {n: c for c in COLORS for n in arms[c].get("nodes") or []}
        baseline = self._baseline(addresses, current)
        start = time.perf_counter()
        if freeze_writes:
            self.ws.config_set(LIVE, "bluegreen:maintenance", "true")
            try:
                self._up()
            except PulumiError as err:
                self.ws.config_set(LIVE, "bluegreen:maintenance", "false")
                self.out(f"could not freeze writes; nothing else was changed:\n{err}")
                self.record(event="flip", phase="failed", **base, error="freeze writes failed")
                return 1
        applied: int | None = None
        for step in steps:
            self._set_pointer(target, step)
            try:
                # Preview first, as a careful operator would: the gate judges the step there, and a
                # refusal costs one smoke sample and changes nothing. Its figures are the evidence.
                with smoke_report() as report:
                    self.ws.preview(LIVE, "--diff", env=report.env)
                    self._up(env=report.env)
                    base["smoke"] = report.figures() or base.get("smoke", {})
            except PulumiError as err:
                self.out(str(err))
                if applied is None:
                    self._restore(
                        current or other(target), None, f"the {step}% step was refused or failed"
                    )
                    if freeze_writes:
                        self.ws.config_set(LIVE, "bluegreen:maintenance", "false")
                        self._up()
                else:
                    self.rollback(reason=f"the {step}% step failed after {applied}%")
                self.record(
                    event="flip",
                    phase="failed",
                    **base,
                    failedStep=step,
                    violations=err.outcome.records(),
                    error=err.summary,
                )
                return 1
            applied = step
            self.out(f"{target} now takes {step}% of traffic; holding {hold_s:g} s")
            # Only requests after this step took effect count toward its verdict.
            source = AccessLogSource(self.access_log(), addresses)
            verdict = hold(source, target, step, baseline, hold_s, interval, rules)
            seen = _summary(verdict.stats)
            if verdict.breach:
                self.out(
                    f"stop rule broken during the {step}% step: {verdict.breach}; rolling back"
                )
                self.rollback(reason=verdict.breach)
                if freeze_writes:
                    self.ws.config_set(LIVE, "bluegreen:maintenance", "false")
                    self._up()
                self.record(
                    event="flip",
                    phase="rolled-back",
                    **base,
                    step=step,
                    breach=verdict.breach,
                    seen=seen,
                )
                return 1
            self.out(f"held {verdict.seconds:.1f} s at {step}%: {json.dumps(seen)}")
        if freeze_writes:
            self.ws.config_set(LIVE, "bluegreen:maintenance", "false")
            self._up()
        wall = time.perf_counter() - start
        self.record(event="flip", phase="done", outcome="ok", **base, seconds=round(wall, 2))
        self.out(f"flip {current} -> {target} done in {wall:.1f} s")
        return 0

    def _baseline(self, addresses: dict[str, str], current: str | None) -> float | None:
        """p95 of the live colour over the last requests in the access log, before the flip."""
        if current is None:
            return None
        source = AccessLogSource(self.access_log(), addresses)
        source.offset = max(0, source.offset - 512 * 1024)
        s = source.read().get(current, ColorStats())
        return s.p95_ms if len(s.latencies_ms) >= 50 else None

    def status(self) -> int:
        live = self.live()
        if not live:
            self.out("live: not deployed (pulumi up -s live)")
        else:
            w = live.get("weights") or {}
            self.out(
                f"live: {live.get('activeColor')}  "
                f"weights blue {w.get('blue')} / green {w.get('green')}  "
                f"maintenance {'ON' if live.get('maintenance') else 'off'}  edge {live.get('url')}"
            )
        for color, out in self.arms().items():
            if not out:
                self.out(f"  {color:<5} not deployed")
                continue
            ready = probe.readiness(out["endpoint"], "/healthz/ready")
            health = "ready" if ready.status == 200 else ready.describe()
            self.out(f"  {color:<5} {out.get('version'):<10} {health:<8} {out.get('endpoint')}")
        try:
            with open(self.log_path) as f:
                lines = f.readlines()[-5:]
        except OSError:
            lines = []
        self.out("last flips:" if lines else "last flips: none recorded")
        for line in lines:
            e = json.loads(line)
            self.out(
                f"  {e['time']} {e['event']:<8} {e.get('from')} -> {e.get('to')}  {e.get('phase')}"
                f"{'  ' + e['breach'] if e.get('breach') else ''}  by {e['who']}"
            )
        return 0


def _summary(stats: dict[str, ColorStats]) -> dict:
    return {
        c: {"requests": s.requests, "errors": s.errors, "p95Ms": round(s.p95_ms, 2)}
        for c, s in stats.items()
    }


def _git_commit(path: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", path, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _first_answer(url: str, color: str, start: float, found: list[float]) -> threading.Thread:
    def run() -> None:
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            if probe.request(url, timeout=1).color == color:
                found.append(time.perf_counter() - start)
                return
            time.sleep(0.01)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# The policy pack's names this tooling uses: it stands alone, so they are pinned by a unit test
# (tests/unit/test_layers.py) rather than imported.
SMOKE_POLICY = "bluegreen-smoke-test"
SMOKE_REPORT_ENV = "BLUEGREEN_SMOKE_REPORT"


class smoke_report:
    """A file the policy pack writes the figures of its smoke sample to (its smoke.py), so the
    flip's evidence carries the gate's own figures and nobody samples the arms twice."""

    def __enter__(self) -> smoke_report:
        fd, self.path = tempfile.mkstemp(prefix="bluegreen-smoke-", suffix=".json")
        os.close(fd)
        self.env = {SMOKE_REPORT_ENV: self.path}
        return self

    def figures(self) -> dict:
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def __exit__(self, *exc) -> None:
        os.unlink(self.path)


class _rollback_policy_config:
    """The shipped policy config with the side-by-side comparison switched off."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> str:
        with open(self.path) as f:
            cfg = json.load(f)
        cfg.setdefault(SMOKE_POLICY, {})["compareArms"] = False
        fd, self.tmp = tempfile.mkstemp(prefix="bluegreen-rollback-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f)
        return self.tmp

    def __exit__(self, *exc) -> None:
        os.unlink(self.tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bluegreen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("flip", help="move traffic to a colour, with optional canary steps")
    f.add_argument("color", choices=COLORS)
    f.add_argument("--canary", type=parse_steps, help="steps in percent, e.g. 5,25,100")
    f.add_argument(
        "--hold", type=parse_duration, default=30.0, help="watch each step this long (30s)"
    )
    f.add_argument("--interval", type=parse_duration, default=1.0, help="check interval (1s)")
    f.add_argument("--freeze-writes", action="store_true", help="read-only edge during the flip")
    f.add_argument("--max-error-rate", type=float, default=StopRules.max_error_rate)
    f.add_argument("--p95-ratio", type=float, default=StopRules.p95_ratio)
    sub.add_parser("rollback", help="flip back to the other colour now")
    sub.add_parser("status", help="live colour, weights, arms, maintenance, last flips")
    args = parser.parse_args(argv)
    op = Operator(Workspace(echo=True, policy_pack="policy"))
    if args.command == "flip":
        rules = StopRules(max_error_rate=args.max_error_rate, p95_ratio=args.p95_ratio)
        return op.flip(args.color, args.canary, args.hold, args.interval, args.freeze_writes, rules)
    if args.command == "rollback":
        return op.rollback()
    return op.status()


if __name__ == "__main__":
    sys.exit(main())
