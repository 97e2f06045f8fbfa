"""A busy machine on demand: processes spinning on the CPU, for tests and benches that must show
a verdict holds when the machine is loaded (CI runners are)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator


class Spinners:
    """The spinning processes: `pause()` them while something the test is not about runs."""

    def __init__(self, procs: list[subprocess.Popen]) -> None:
        self.procs = procs

    def pause(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def busy_loops(n: int = 4) -> Iterator[Spinners]:
    """`n` processes spinning on the CPU, stopped on leaving, also when the block fails."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield Spinners(spinners)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
