"""Which processes a test run started, found through /proc: every process the suite starts either
inherits a marker in its environment (the CLI, its plugins, nginx, knotd) or runs inside the
suite's temporary directory (the arms' services, which get a minimal environment)."""

from __future__ import annotations

import os
import time

MARKER = "BLUEGREEN_TEST_RUN"


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def started_by(marker: str, root: str | None = None) -> dict[int, str]:
    """pid -> command line of every live process (not this one) carrying `MARKER=marker` in its
    environment, or working or named under `root`."""
    found: dict[int, str] = {}
    needle = f"{MARKER}={marker}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        stat = _read(f"/proc/{pid}/stat")
        if not stat or stat.rsplit(b")", 1)[-1].split()[0] == b"Z":
            continue  # gone, or a zombie its parent has yet to reap
        cmdline = _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode(errors="replace")
        ours = needle in _read(f"/proc/{pid}/environ").split(b"\0")
        if not ours and root:
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                cwd = ""
            ours = cwd.startswith(root) or root in cmdline
        if ours:
            found[pid] = cmdline.strip()
    return found


def wait_gone(marker: str, root: str | None = None, timeout: float = 15.0) -> dict[int, str]:
    """What is still running after `timeout` seconds of waiting for it to exit."""
    deadline = time.monotonic() + timeout
    left = started_by(marker, root)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = started_by(marker, root)
    return left
