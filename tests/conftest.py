"""The suite's tiers, one directory each, and what every test gets.

- tests/unit: no process, no port; Pulumi's mocks at most. Held to it: a unit test that starts a
  process or opens a connection fails, naming what it did (`scripts/test --fast` runs this tier).
- tests/integration: real parts without stacks: nginx, PostgreSQL, nix-instantiate, git, sshd,
  the queue service and the writer as processes.
- tests/e2e: real stacks under the real `pulumi` CLI.

Helpers live in tests/support; the fixtures more than one module uses are in
tests/support/fixtures.py, registered here for every tier.
"""

import os
import signal
import socket
import subprocess
import uuid

import pytest

from tests.support import leaks

pytest_plugins = ["tests.support.fixtures", "tests.support.nixos_env"]

TIERS = {
    "unit": "no process, no port (scripts/test --fast)",
    "integration": "real nginx, PostgreSQL, nix-instantiate, git and processes; no stacks",
    "e2e": "real stacks under the real pulumi CLI",
}


def pytest_configure(config):
    for tier, what in TIERS.items():
        config.addinivalue_line("markers", f"{tier}: {what}")


LONGEST_FIRST = (
    "test_edges.py",
    "test_schema_flip.py",
    "test_preview_truth.py",
    "test_hold_metrics.py",
    "test_writers.py",
    "test_cutover.py",
)
"""The end-to-end modules whose tests take one to four minutes each under the suite's load
(`scripts/test` prints the slowest): they start first, so that the two workers end together on
short tests rather than one waiting for the other's last long one."""


def pytest_collection_modifyitems(config, items):
    """Every test gets its tier's marker from its directory (tests/<tier>/), so `-m unit`,
    `-m integration` and `-m e2e` select a tier wherever pytest is pointed. The longest modules
    go first (`LONGEST_FIRST`); the rest keep their order."""
    for item in items:
        for tier in TIERS:
            if f"{os.sep}tests{os.sep}{tier}{os.sep}" in str(item.path):
                item.add_marker(getattr(pytest.mark, tier))
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


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
                f"a unit test {what} ({args[1:2] or ''}): it belongs in tests/integration "
                "(tests/conftest.py)"
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
