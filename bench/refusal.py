"""How long a flip to a slower green takes to be refused: the operator's `flip` command against a
bare `pulumi up -s live` with the policy pack, both on the local platform.

Green answers 40 ms slower than blue, so the smoke sample (300 requests per arm) refuses it; the
figures show what sampling costs and whether the command samples more than once.

    .venv/bin/python -m bench.refusal [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile

from cutover.operator import Operator
from cutover.workspace import timed
from tests.support.sandbox import make_project


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(tmp, policy=True)
        try:
            project.ws.config_set("green", "bluegreen:simulate", "delay-ms=40")
            project.up_all(active="blue")
            said: list[str] = []
            op = Operator(project.ws, out=said.append)
            flips = [timed(op.flip, "green", hold_s=1)[1] for _ in range(runs)]
            project.ws.config_set("live", "bluegreen:activeColor", "green")
            ups = [timed(project.ws.up, "live", check=False)[1] for _ in range(runs)]
        finally:
            left = project.teardown()
    print(f"refusing a 40 ms slower green, median of {runs} (min-max):")
    for label, xs in (("flip command", flips), ("bare pulumi up", ups)):
        print(f"  {label:<15} {statistics.median(xs):5.1f} s ({min(xs):.1f}-{max(xs):.1f})")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
