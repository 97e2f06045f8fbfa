"""Shared fixtures and the suite's tiers. `set_mocks` is process-global, so unit tests set it per
test (tests/unit).

Tiers, as pytest markers (`scripts/test --fast` runs the first alone):
- unit: no process, no port; Pulumi's mocks at most. Held to it: a unit test that starts a
  process or opens a connection fails, naming what it did.
- integration: real parts without stacks (nginx, PostgreSQL, nix-instantiate, git, sshd, the
  queue service and the writer as processes), marked `pytest.mark.integration` (its module's
  `pytestmark`, or the test's own mark).
- e2e: real stacks under the real `pulumi` CLI (tests/e2e, unless marked integration).
"""

import os
import signal
import socket
import subprocess
import sys
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import pytest  # noqa: E402

from tests import leaks  # noqa: E402

TIERS = {
    "unit": "no process, no port (scripts/test --fast)",
    "integration": "real nginx, PostgreSQL, nix-instantiate, git and processes; no stacks",
    "e2e": "real stacks under the real pulumi CLI",
}


def pytest_configure(config):
    for tier, what in TIERS.items():
        config.addinivalue_line("markers", f"{tier}: {what}")


def pytest_collection_modifyitems(config, items):
    """Every test gets its tier: integration where its module says so, else e2e under
    tests/e2e and unit elsewhere."""
    for item in items:
        if item.get_closest_marker("integration"):
            continue
        e2e = os.sep + "e2e" + os.sep in str(item.path)
        item.add_marker(pytest.mark.e2e if e2e else pytest.mark.unit)


class _NotUnit(AssertionError):
    pass


@pytest.fixture(autouse=True)
def _unit_stays_in_process(request, monkeypatch):
    """A unit test starts no process and opens no connection: doing so fails it."""
    if not request.node.get_closest_marker("unit"):
        return

    def refuse(what):
        def refused(*args, **kwargs):
            raise _NotUnit(
                f"a unit test {what} ({args[1:2] or ''}): mark it (or its module) "
                "pytest.mark.integration (tests/conftest.py)"
            )

        return refused

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("started a process"))
    monkeypatch.setattr(socket.socket, "connect", refuse("opened a connection"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("opened a connection"))
    monkeypatch.setattr(socket.socket, "bind", refuse("bound a port"))


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
