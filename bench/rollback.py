"""Time to recover with `bluegreen rollback` (Operator.rollback): from the command's start until the
previous colour answers through the edge. Target here: under 10 s (the reference allows 2 min).

    .venv/bin/python -m bench.rollback [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile

from cutover.operator import Operator
from cutover.results import Outcome
from cutover.rolling_back import rollback
from tests.support.sandbox import make_project


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    recover, updates = [], []
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(tmp, policy=True)
        try:
            project.up_all(active="blue")
            op = Operator(project.ws, out=lambda _: None)
            for _ in range(runs):
                project.ws.config_set("live", "bluegreen:activeColor", "green")
                project.ws.up("live")
                assert rollback(op, reason="bench").outcome is Outcome.DONE
                record = [e for e in op.log.last(1) if e.get("phase") == "done"][-1]
                recover.append(record["timeToRecover"])
                updates.append(record["seconds"])
        finally:
            left = project.teardown()
    print(f"rollback green -> blue, {runs} runs")
    med, worst = statistics.median(recover), max(recover)
    print(f"  time to recover (blue answering): median {med:.2f} s, max {worst:.2f} s")
    print(f"  rollback command wall time:       median {statistics.median(updates):.2f} s")
    print(f"target under 10 s: {'meets' if max(recover) < 10 else 'MISSES'}")
    if left:
        print(f"warning: teardown left {left}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
