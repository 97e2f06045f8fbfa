"""The fixtures more than one test module uses, registered for every tier by tests/conftest.py."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import time

import pytest

from platforms.local.edge_files import served
from platforms.nixos import ssh_deploy
from tests.support import postgres
from tests.support.edge import (
    Edge,
    start_edge,
)


@pytest.fixture
def ssh_calls(monkeypatch, tmp_path) -> list[tuple[list[str], bytes | None]]:
    """Every ssh command a deploy runs, answered with success and never sent anywhere."""
    calls: list[tuple[list[str], bytes | None]] = []

    def fake_run(argv, stdin):
        key = argv[argv.index("-i") + 1]
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600  # the key exists, private, during ssh
        calls.append((argv, stdin))
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    monkeypatch.setattr(ssh_deploy, "run", fake_run)
    monkeypatch.setattr(ssh_deploy.tempfile, "tempdir", str(tmp_path))
    return calls


@pytest.fixture
def start(tmp_path):
    started: list[tuple[Edge, list[subprocess.Popen]]] = []

    def make(**features) -> Edge:
        edge, procs = start_edge(tmp_path, **features)
        started.append((edge, procs))
        return edge

    yield make
    for edge, procs in started:
        pid_file = os.path.join(edge.run, "nginx.pid")
        if os.path.exists(pid_file):
            os.kill(int(open(pid_file).read()), signal.SIGQUIT)
        for p in procs:
            p.terminate()
            p.wait(10)
        deadline = time.monotonic() + 10
        while os.path.exists(pid_file) and time.monotonic() < deadline:
            time.sleep(0.05)
        if served(edge.run) != edge.run:
            shutil.rmtree(served(edge.run), ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL server for the session (initdb takes seconds); each test gets its own
    database from `postgres_dsn`."""
    if postgres.bindir() is None:
        pytest.skip("no PostgreSQL server installed: /usr/lib/postgresql/*/bin/initdb not found")
    with postgres.server() as dsn:
        yield dsn


@pytest.fixture
def postgres_dsn(postgres_server):
    return postgres.database(postgres_server)
