"""What the `bluegreen` commands cost next to the plain `pulumi` CLI doing the same thing, in one
run, on one sandbox with light traffic through the edge (about 50 requests/s):

- `bluegreen status` against one `pulumi stack output -s live --json`;
- `bluegreen rollback` against the README's rollback line: `pulumi config set` and
  `pulumi up -s live --yes --skip-preview` with the policy pack;
- `bluegreen flip X --hold H`, minus H, against the README's flip: `pulumi config set`,
  `pulumi preview -s live --diff` and `pulumi up -s live --yes --skip-preview`, with the pack.

Each round runs every command once, alternating which colour is live, and the medians over the
rounds are printed with their ratios and the targets (rollback at most 1.15 x, flip minus hold at
most 1.3 x, status at most 3 x). With `--baseline REF` the same run is made first against the
project and the command as they were at REF (bench/baseline.py), and both are printed.

    .venv/bin/python -m bench.ops_cost [--rounds 5] [--hold 5] [--baseline 5c10c4d]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from bench import baseline
from bench.breach_rollback import Load
from tests.support.sandbox import LocalProject, make_project

GATE = ["--policy-pack", "policy", "--policy-pack-config", "policy/config.json"]
TARGETS = {"rollback": 1.15, "flip": 1.3, "status": 3.0}


@dataclass
class Figures:
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.seconds.setdefault(name, []).append(value)

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])


def _timed(argv: list[str], project: LocalProject, root: str | None = None) -> float:
    env = {**project.ws.env, **({"PYTHONPATH": root} if root else {})}
    start = time.perf_counter()
    done = subprocess.run(
        argv, cwd=project.dir, env=env, capture_output=True, text=True, timeout=600
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds


def _plain(project: LocalProject, *argvs: list[str]) -> float:
    pulumi = project.ws.binary()
    return sum(_timed([pulumi, *argv], project) for argv in argvs)


def _set(color: str) -> list[str]:
    return ["config", "set", "-s", "live", "bluegreen:activeColor", color]


def measure(root: str, rounds: int, hold: float) -> Figures:
    """Every command `rounds` times on a sandbox copied from `root`, run by `root`'s command."""
    command = [sys.executable, "-m", "cutover.cli"]  # root's, by PYTHONPATH
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="bluegreen-ops-") as tmp:
        project = make_project(tmp, policy=True, root=root)
        try:
            project.up_all(active="blue")
            with Load(project.edge_url, every=0.02):  # light traffic, for the hold to judge
                time.sleep(1)
                for n in range(rounds):
                    print(f"  round {n + 1} of {rounds}", file=sys.stderr, flush=True)
                    flip = _timed(
                        [*command, "flip", "green", "--hold", f"{hold:g}s"], project, root
                    )
                    figures.add("bluegreen flip - hold", flip - hold)
                    figures.add("plain rollback", _plain(project, _set("blue"), up(GATE)))
                    figures.add(
                        "plain flip",
                        _plain(project, _set("green"), preview(GATE), up(GATE)),
                    )
                    figures.add("bluegreen rollback", _timed([*command, "rollback"], project, root))
                    stack_output = ["stack", "output", "-s", "live", "--json"]
                    figures.add("plain status", _plain(project, stack_output))
                    figures.add("bluegreen status", _timed([*command, "status"], project, root))
        finally:
            left = project.teardown()
            if left:
                print(f"warning: teardown left {left}", file=sys.stderr)
    return figures


def up(gate: list[str]) -> list[str]:
    return ["up", "-s", "live", "--yes", "--skip-preview", *gate]


def preview(gate: list[str]) -> list[str]:
    return ["preview", "-s", "live", "--diff", *gate]


def report(label: str, f: Figures, hold: float) -> list[str]:
    rows = [
        ("rollback", "bluegreen rollback", "plain rollback", "config set + up --skip-preview"),
        ("flip", "bluegreen flip - hold", "plain flip", "config set + preview + up"),
        ("status", "bluegreen status", "plain status", "one stack output"),
    ]
    lines = [f"{label}:"]
    for key, ours, plain, what in rows:
        ratio = f.median(ours) / f.median(plain)
        verdict = "meets" if ratio <= TARGETS[key] else "MISSES"
        lines.append(
            f"  {ours:<24} {f.median(ours):6.2f} s   plain ({what}) {f.median(plain):5.2f} s"
            f"   {ratio:4.2f} x  (target <= {TARGETS[key]:g} x: {verdict})"
        )
    n = len(f.seconds["plain status"])
    lines.append(f"  medians of {n} rounds; hold {hold:g} s subtracted from the flip")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hold", type=float, default=5.0, help="seconds each flip holds")
    parser.add_argument("--baseline", metavar="REF", help="also measure the project at REF")
    args = parser.parse_args()
    sides = baseline.measure(args.baseline, lambda root: measure(root, args.rounds, args.hold))
    for label, figures in sides:
        print("\n".join(report(label, figures, args.hold)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
