"""Shared fixtures. `set_mocks` is process-global, so unit tests set it per test (tests/unit)."""

import os
import signal
import sys
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import pytest  # noqa: E402

from tests import leaks  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def nothing_left_running(tmp_path_factory):
    """The suite leaves no process behind: everything it starts (CLI, plugins, nginx, knotd, the
    arms' services) carries a marker or lives in the suite's temporary directory, and must be
    gone once the last test has finished. Anything left is killed and fails the run."""
    marker = uuid.uuid4().hex
    os.environ[leaks.MARKER] = marker  # inherited by every process the tests start
    root = str(tmp_path_factory.getbasetemp()) + os.sep
    yield
    left = leaks.wait_gone(marker, root)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert not left, "the test run left processes running:\n" + "\n".join(
        f"  {pid} {cmd[:160]}" for pid, cmd in sorted(left.items())
    )
