"""Fixtures shared by the intent store's and the queue service's tests."""

from __future__ import annotations

import pytest

from tests.support import postgres


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
