"""Time from a breach starting to traffic back on the old colour, with the hold checking every
second: green is flipped to, takes all traffic, then starts answering 500 (SIGUSR1 to its
service); the clock runs from that signal until every request through the edge is answered by
blue again. Per metrics source (nginx's access log, the local Prometheus). Target: at most 5 s
median at a 1 s check interval (the reference allows 2 minutes).

    .venv/bin/python -m bench.breach_rollback [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time

from bluegreen import probe
from cutover.flip import flip
from cutover.operator import Operator
from cutover.results import Outcome
from tests.support.sandbox import make_project


class Load:
    """Requests through the edge on one thread, each noted with when it was answered and by whom."""

    def __init__(self, url: str, every: float = 0.005) -> None:
        self.url, self.every = url, every
        self.answers: list[tuple[float, str | None, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            a = probe.request(self.url, timeout=2)
            self.answers.append((time.monotonic(), a.color, a.status))
            time.sleep(self.every)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def back_on(self, color: str, since: float) -> float | None:
        """When answers became `color` with 200 for good, after `since`."""
        last_bad = since
        for t, c, status in self.answers:
            if t >= since and (c != color or status != 200):
                last_bad = t
        good = [t for t, c, s in self.answers if t > last_bad and c == color and s == 200]
        return good[0] if good else None


def one_run(project, op: Operator) -> float:
    """Seconds from the breach starting to blue serving every request again."""
    green = int(
        open(os.path.join(project.dir, ".bluegreen", "green", "green.pid")).read().split()[0]
    )
    started: list[float] = []

    def fail_green() -> None:
        # Green has taken the traffic once the edge's answers are green's (asked of the edge, not
        # of the state: a `pulumi stack output` every few ms would slow the flip it waits for).
        while set(project.colors(5)) != {"green"}:
            time.sleep(0.05)
        time.sleep(2)  # green serving well for a moment first
        started.append(time.monotonic())
        os.kill(green, signal.SIGUSR1)

    failer = threading.Thread(target=fail_green, daemon=True)
    with Load(project.edge_url) as load:
        failer.start()
        ended = flip(op, "green", hold_s=120, interval=1)
        failer.join()
        time.sleep(1)
    os.kill(green, signal.SIGUSR2)  # well again, for the next run
    assert ended.outcome is Outcome.ROLLED_BACK, ended
    assert op.verdict is not None and op.verdict.outcome == "breach", op.verdict
    back = load.back_on("blue", started[0])
    assert back is not None, "blue never served every request again"
    return back - started[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    figures: dict[str, list[float]] = {}
    left: list[str] = []
    for source in ("accessLog", "prometheus"):
        with tempfile.TemporaryDirectory() as tmp:
            project = make_project(tmp, policy=True)
            try:
                project.ws.config_set("live", "bluegreen:metrics", source)
                project.up_all(active="blue")
                time.sleep(5)  # Prometheus's first scrapes
                op = Operator(project.ws, out=lambda _: None)
                figures[source] = [one_run(project, op) for _ in range(runs)]
            finally:
                left += project.teardown()
    print(f"breach -> traffic back on the old colour, check interval 1 s, {runs} runs each")
    for source, seconds in figures.items():
        print(
            f"  {source:<11} median {statistics.median(seconds):5.2f} s   max {max(seconds):5.2f} s"
            f"   ({', '.join(f'{s:.2f}' for s in seconds)})"
        )
    worst = max(statistics.median(s) for s in figures.values())
    print(f"target at most 5 s median: {'meets' if worst <= 5 else 'MISSES'} ({worst:.2f} s)")
    if left:
        print(f"warning: teardown left {left}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
