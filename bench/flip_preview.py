"""How long the gate takes: `pulumi preview -s live --policy-pack policy` for a local flip.

Prints the preview's wall time with the policy pack, the time the smoke sample itself took in it
(the pack reports its own figures to the file named by BLUEGREEN_SMOKE_REPORT, as it does for
`bluegreen flip`), and a no-op preview without the pack (the engine's floor). Target: under 8 s.

    .venv/bin/python -m bench.flip_preview [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

from cutover.flip_log import SMOKE_REPORT_ENV
from cutover.workspace import Workspace, timed
from tests.support.sandbox import make_project


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(tmp, policy=True)
        try:
            project.up_all(active="blue")
            bare = Workspace(project_dir=project.dir, env=project.ws.env)
            floor = [timed(bare.preview, "live")[1] for _ in range(runs)]
            project.ws.config_set("live", "bluegreen:activeColor", "green")
            report = os.path.join(tmp, "smoke.json")
            reporting = project.ws.with_env({SMOKE_REPORT_ENV: report})
            gated, sample = [], []
            for _ in range(runs):
                gated.append(timed(reporting.preview, "live")[1])
                with open(report) as f:
                    figures = json.load(f)
                sample.append(figures["seconds"])
        finally:
            left = project.teardown()
    print(f"runs: {runs} each; smoke sample: {figures['samples']} requests per arm")
    for label, values in (
        ("pulumi preview -s live, flip, with --policy-pack", gated),
        ("  of which the side-by-side smoke sample", sample),
        ("pulumi preview -s live, no change, no policy pack", floor),
    ):
        print(
            f"{label:<52} median {statistics.median(values):5.2f} s   "
            f"min {min(values):5.2f} s   max {max(values):5.2f} s"
        )
    verdict = "meets" if statistics.median(gated) < 8 else "MISSES"
    print(f"target: flip preview with the policy pack under 8 s: {verdict}")
    if left:
        print(f"warning: teardown left {left}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
