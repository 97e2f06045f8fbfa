"""What the flip's `pulumi up -s live` costs next to a no-op `pulumi preview -s live`, and where
the difference goes.

Both run with the policy pack as the tooling passes it (cutover.workspace.Workspace: `--policy-pack
policy --policy-pack-config policy/config.json`, the up with `--yes --skip-preview`, both with an
engine event log), on the local platform (two arms as processes, a real nginx, all on loopback) in
a throwaway project with its own state backend and ports (tests/support/sandbox.py).

How it measures: three kinds of run, on the same deployed project: a no-op preview; a flip as
the tooling runs it (`pulumi up --skip-preview`, cutover.workspace); a flip typed by hand
without `--skip-preview` (`pulumi up -s live --yes` with the pack: the CLI previews, then
updates). Flips go blue -> green, then back, all traffic. After an untimed warm-up, each round
runs one of each, in an order that changes from round to round, so load from other work on the
machine hits all kinds alike. A figure is the wall time of the `pulumi` process. After each flip
the bench checks (untimed) that the new colour answers through nginx, and that every preview
reported no changes; a flip the gate refuses (its p95 comparison is sensitive to load on a
shared machine) is retried and reported, not timed. The 1-minute load average is printed with
the figures.

The breakdown: the engine's event log carries timestamps in whole seconds only, so the bench tails
the log while the CLI writes it and stamps each event on arrival. The phases run between these
events (the program, the pack and the dynamic provider are processes the engine starts in turn,
and it handles registrations one at a time, so the phases follow each other):

    CLI start ............. process start -> policyLoadEvent (the pack's process is launched)
    pack start ............ -> preludeEvent (the pack has started; the program is launched)
    program start ......... -> the program's first resource registration
    arm stack reads ....... -> the engine starts analysing the Edge (StackReferences to blue, green)
    gate on the Edge ...... -> the Edge's analysis is done: the pack's read of the live stack's
                               outputs, and in a flip its smoke sample of both arms
    dynamic provider start  -> the step of the pulumi-python provider (its process has started)
    switch check/diff ..... -> the step of the switch (the NginxEdge) begins
    switch apply .......... -> the NginxEdge step is done (update only: readiness probe, render,
                               `nginx -t`, swap, SIGHUP, poll until the new config answers)
    outputs, program exit . -> summaryEvent
    CLI exit .............. -> the process has exited (last state write, plugins stopped)

Alone, next to that: the smoke sample's own seconds (the pack writes them where
BLUEGREEN_SMOKE_REPORT points, as it does for `scripts/flip`), the edge's `confirmedAfterMs`
(SIGHUP to the new config answering, from the state), `nginx -t` on the served config, `pulumi
stack output` (the pack's state read), and a Python start with `import pulumi` (paid by the
program and the dynamic provider) or `import pulumi_policy` (the pack).

With `--baseline REV` the bench deploys a second project whose program and policy pack are
those of git revision REV, and interleaves its previews and flips with this tree's: the
before/after of a change, under the same load.

    .venv/bin/python -m bench.flip_cost [--rounds 6] [--per-round] [--baseline REV]
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from bench.event_trace import PHASES, Trace, TracedWorkspace, retry_refused
from cutover.workspace import ROOT, Workspace, timed
from tests.support.sandbox import LocalProject, make_project

TARGET = 1.25


def _load() -> float:
    return os.getloadavg()[0]


def _edge_state(ws: Workspace) -> dict:
    """The NginxEdge's outputs in the live stack's state."""
    exported = json.loads(ws.run("stack", "export", "-s", "live").stdout)
    for res in exported.get("deployment", {}).get("resources", []):
        if res.get("type", "").endswith(":NginxEdge"):
            return res.get("outputs", {})
    return {}


def _check_serving(project: LocalProject, color: str) -> None:
    seen = project.colors(5)
    if set(seen) != {color}:
        raise RuntimeError(f"after the flip to {color} the edge answered {seen}")


def _median(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else math.nan


def _alone(project: LocalProject, runs: int) -> dict[str, list[float]]:
    """Parts of the flip measured on their own, outside pulumi."""
    ws, env = project.ws, project.ws.env
    python = os.path.join(project.dir, ".venv", "bin", "python")
    confs = glob.glob(os.path.join(project.dir, ".bluegreen", "*", "nginx.conf"))
    figures: dict[str, list[float]] = {
        "pulumi stack output (the pack's state read)": [],
        "nginx -t on the served config": [],
        "python -c 'import pulumi'": [],
        "python -c 'import pulumi_policy' (in policy/)": [],
    }
    for _ in range(runs):
        cmd = ("stack", "output", "--stack", "live", "--json", "--non-interactive")
        figures["pulumi stack output (the pack's state read)"].append(timed(ws.run, *cmd)[1])
        for conf in confs[:1]:
            run_dir = os.path.dirname(conf)
            nginx = ["nginx", "-t", "-q", "-p", run_dir, "-c", conf]
            figures["nginx -t on the served config"].append(
                timed(subprocess.run, nginx, check=True, capture_output=True, env=env)[1]
            )
        for label, code, cwd in (
            ("python -c 'import pulumi'", "import pulumi", project.dir),
            (
                "python -c 'import pulumi_policy' (in policy/)",
                "import pulumi_policy, bluegreen_policy.rules",
                os.path.join(project.dir, "policy"),
            ),
        ):
            figures[label].append(
                timed(subprocess.run, [python, "-c", code], cwd=cwd, check=True, env=env)[1]
            )
    return figures


PROGRAM = ("Pulumi.yaml", "__main__.py", "bluegreen", "components", "platforms", "app", "policy")


def _checkout(project: LocalProject, rev: str, tmp: str) -> None:
    """Replace the sandbox's copy of the program and the pack by their state at `rev`."""
    into = tempfile.mkdtemp(dir=tmp)
    archive = subprocess.run(
        ["git", "-C", ROOT, "archive", rev, "--", *PROGRAM], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    for name in PROGRAM:
        dst = os.path.join(project.dir, name)
        if os.path.isdir(dst):
            shutil.rmtree(dst)
        elif os.path.exists(dst):
            os.unlink(dst)
        if os.path.exists(os.path.join(into, name)):
            os.replace(os.path.join(into, name), dst)


@dataclass
class Tree:
    """One copy of the project, deployed, with what was measured on it."""

    label: str
    project: LocalProject
    ws: TracedWorkspace
    report: str
    color: str = "blue"
    runs: dict[str, list[Trace]] = field(
        default_factory=lambda: {"preview": [], "up": [], "previewing": []}
    )
    smoke_s: list[float] = field(default_factory=list)
    confirm_ms: list[float] = field(default_factory=list)

    def forget(self) -> None:
        for kind in self.runs.values():
            del kind[:]
        del self.smoke_s[:], self.confirm_ms[:]

    def preview(self) -> None:
        result = self.ws.preview("live", env={SMOKE_REPORT: self.report})
        self.runs["preview"].append(self.ws.last)
        if result.outcome.steps:
            raise RuntimeError(f"the preview was not a no-op: {result.outcome.steps}")

    def step(self, kind: str, refusals: list[str]) -> None:
        """P: a no-op preview; U: a flip as the tooling runs it; R: one that previews first."""
        if kind == "P":
            self.preview()
        else:
            self.flip("up" if kind == "U" else "previewing", refusals)

    def flip(self, kind: str, refusals: list[str]) -> None:
        ws, env = self.ws, {SMOKE_REPORT: self.report}  # as scripts/flip passes it
        self.color = "green" if self.color == "blue" else "blue"
        ws.config_set("live", "bluegreen:activeColor", self.color)
        if os.path.exists(self.report):
            os.unlink(self.report)
        label = f"{self.label} {kind}"
        if kind == "up":  # what cutover.workspace (scripts/flip, the demo) runs
            retry_refused(lambda: ws.up("live", env=env), refusals, label)
        else:  # typed by hand without --skip-preview: the CLI previews, then updates
            cmd = ("up", "-s", "live", "--yes", "--non-interactive", "--color=never", *GATE)
            retry_refused(lambda: ws.run_logged(*cmd, env=env), refusals, label)
        self.runs[kind].append(ws.last)
        _check_serving(self.project, self.color)
        if kind == "up":
            with open(self.report) as f:
                self.smoke_s.append(float(json.load(f)["seconds"]))
            self.confirm_ms.append(float(_edge_state(ws).get("confirmedAfterMs") or math.nan))


SMOKE_REPORT = "BLUEGREEN_SMOKE_REPORT"
GATE = ("--policy-pack", "policy", "--policy-pack-config", "policy/config.json")


def _tree(tmp: str, label: str, rev: str | None) -> Tree:
    where = os.path.join(tmp, label.replace(" ", "-"))
    os.makedirs(where)
    project = make_project(where, policy=True)
    if rev:
        _checkout(project, rev, tmp)
    ws = TracedWorkspace(project_dir=project.dir, env=project.ws.env, policy_pack="policy")
    return Tree(label, project, ws, os.path.join(where, "smoke.json"))


def _report(tree: Tree, kinds: str, rounds: int) -> None:
    secs = {k: [t.seconds for t in v] for k, v in tree.runs.items()}
    labels = {
        "P": ("preview", "pulumi preview -s live, no-op"),
        "U": ("up", "pulumi up -s live --skip-preview, flip"),
        "R": ("previewing", "pulumi up -s live, flip, previews first"),
    }
    print(f"{tree.label}:")
    for key, label in (labels[k] for k in kinds):
        xs = secs[key]
        med, lo, hi = _median(xs), min(xs), max(xs)
        print(f"  {label:<40} median {med:5.2f} s   min {lo:5.2f}   max {hi:5.2f}")
    for k, label in (
        ("U", "up as cutover.workspace runs it (--skip-preview)"),
        ("R", "up without --skip-preview (previews first)"),
    ):
        if k not in kinds:
            continue
        key = labels[k][0]
        ratio = _median(secs[key]) / _median(secs["preview"])
        each = sorted(u / p for u, p in zip(secs[key], secs["preview"], strict=True))
        verdict = "meets" if ratio <= TARGET else "MISSES"
        print(
            f"  ratio {label:<49} {ratio:4.2f}  (per round {each[0]:.2f}-{each[-1]:.2f}); "
            f"target <= {TARGET}: {verdict}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", action="store_true", help="print every round's figures")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure the program and pack of git revision REV, interleaved with this tree "
        "(previews and --skip-preview flips only)",
    )
    args = parser.parse_args()
    refusals: list[str] = []
    loads = [_load()]
    kinds = "PU" if args.baseline else "PUR"
    with tempfile.TemporaryDirectory() as tmp:
        trees = [_tree(tmp, "this tree", None)]
        if args.baseline:
            trees.insert(0, _tree(tmp, f"baseline {args.baseline}", args.baseline))
        steps = [(t, k) for t in trees for k in kinds]
        left: list[str] = []
        try:
            for t in trees:
                t.project.up_all(active="blue")
                for k in "URP" if "R" in kinds else "UUP":  # warm-up, not counted
                    t.step(k, refusals)
                t.forget()
            for i in range(args.rounds):
                # Each round a different order, so each run takes each position about as often.
                order = steps[i % len(steps) :] + steps[: i % len(steps)]
                for t, k in reversed(order) if i % 2 else order:
                    t.step(k, refusals)
                loads.append(_load())
                if args.per_round:
                    figures = "; ".join(
                        f"{t.label}: "
                        + " ".join(f"{k} {v[-1].seconds:.2f}" for k, v in t.runs.items() if v)
                        for t in trees
                    )
                    print(f"round {i + 1}: {figures}; load {loads[-1]:.2f}", flush=True)
            alone = _alone(trees[-1].project, runs=3)
        finally:
            for t in trees:
                left += t.project.teardown()

    print(
        f"flip cost, local platform, policy pack on: {args.rounds} rounds, interleaved; "
        f"1-min load average {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} cores"
    )
    for t in trees:
        _report(t, kinds, args.rounds)

    print("\nwhere the time goes (medians, s; from event arrival times)")
    cols = [(t, k) for t in trees for k in ("preview", "up", "up-preview")]
    if "R" in kinds:
        cols.append((trees[-1], "previewing"))
    if len(trees) > 1:
        print(f"  {'':<24}" + "".join(f"{t.label[:31]:>31}" for t in trees))
    names = {
        "preview": "preview",
        "up": "up",
        "up-preview": "up-preview",
        "previewing": "previewing up",
    }
    widths = {"preview": 12, "up": 7, "up-preview": 12, "previewing": 15}
    print(f"  {'phase':<24}" + "".join(f"{names[k]:>{widths[k]}}" for _, k in cols))
    phases = {(id(t), k): [x.phases() for x in t.runs[k]] for t in trees for k in t.runs}
    totals = {(id(t), k): _median([x.seconds for x in t.runs[k]]) for t in trees for k in t.runs}
    for name in [*PHASES, "total"]:
        row = ""
        for t, k in cols:
            width = widths[k]
            if k == "up-preview":
                p, u = (
                    totals[(id(t), kk)]
                    if name == "total"
                    else _median([x[name] for x in phases[(id(t), kk)]])
                    for kk in ("preview", "up")
                )
                row += f"{u - p:+{width}.3f}"
            else:
                v = (
                    totals[(id(t), k)]
                    if name == "total"
                    else _median([x[name] for x in phases[(id(t), k)]])
                )
                row += f"{v:{width}.3f}"
        print(f"  {name:<24}{row}")
    if "R" in kinds:
        previewing = trees[-1].runs["previewing"]
        first = _median([x.parts()[0] if len(x.parts()) > 1 else math.nan for x in previewing])
        print(
            f"  (previewing up: its own preview takes the first {first:.3f} s; "
            "its column is the update after it)"
        )
    print("\ninside those phases, and alone (medians, s)")
    for t in trees:
        tag = f" [{t.label}]" if len(trees) > 1 else ""
        print(f"  {'smoke sample in the up (its own seconds)' + tag:<68}{_median(t.smoke_s):7.3f}")
        print(
            f"  {'edge confirmedAfterMs (SIGHUP to new config)' + tag:<68}"
            f"{_median(t.confirm_ms) / 1000:7.3f}"
        )
    for label, xs in alone.items():
        where = "up only" if label.startswith("nginx") else "both"
        print(f"  {label + ' (' + where + ')':<68}{_median(xs):7.3f}")
    for refusal in refusals:
        print(f"refused by the gate and retried (not timed): {refusal}")
    if left:
        print(f"warning: teardown left {left}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
