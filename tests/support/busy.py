"""A busy machine on demand: processes spinning on the CPU, for tests and benches that must show
a verdict holds when the machine is loaded (CI runners are)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def busy_loops(n: int = 4) -> Iterator[None]:
    """`n` processes spinning on the CPU, stopped on leaving, also when the block fails."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in spinners:
            p.kill()
            p.wait()
