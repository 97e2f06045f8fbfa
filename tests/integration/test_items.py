"""The schema's revisions on a real PostgreSQL, the reference app's two shapes on it, and the lint
with the real squawk (bluegreen/schema.py, app/migrations, app/items.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest

from bluegreen import probe, schema
from tests.support.sandbox import ROOT, free_ports

ALL = ["0001_items", "0002_items_name", "0003_drop_title"]


def columns(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'items' "
            "ORDER BY ordinal_position"
        ).fetchall()
    return [name for (name,) in rows]


def test_the_revisions_apply_one_by_one_and_applied_lists_them(postgres_dsn):
    assert schema.applied(postgres_dsn) == []
    assert schema.upgrade(postgres_dsn, "0001_items") == ALL[:1]
    assert columns(postgres_dsn) == ["id", "title", "created_at"]
    assert schema.upgrade(postgres_dsn, "0002_items_name") == ALL[:2]
    assert columns(postgres_dsn) == ["id", "title", "created_at", "name"]
    with psycopg.connect(postgres_dsn) as conn:  # the trigger keeps both shapes filled
        conn.execute("INSERT INTO items (title) VALUES ('one')")
        conn.execute("INSERT INTO items (name) VALUES ('two')")
        conn.execute("UPDATE items SET title = 'ONE' WHERE id = 1")
        conn.execute("UPDATE items SET name = 'TWO' WHERE id = 2")
        rows = conn.execute("SELECT id, title, name FROM items ORDER BY id").fetchall()
    assert rows == [(1, "ONE", "ONE"), (2, "TWO", "TWO")]
    assert schema.upgrade(postgres_dsn, "0003_drop_title") == ALL
    assert columns(postgres_dsn) == ["id", "created_at", "name"]
    # The same list through a key=value DSN, as libpq writes them.
    words = psycopg.conninfo.conninfo_to_dict(postgres_dsn)
    assert schema.applied(" ".join(f"{k}='{v}'" for k, v in words.items())) == ALL
    with pytest.raises(ValueError, match="never migrates down"):
        schema.upgrade(postgres_dsn, "0001_items")
    assert schema.upgrade(postgres_dsn, "0003_drop_title") == ALL  # again: nothing to do


def test_the_backfill_fills_the_rows_already_there_in_committed_batches(postgres_dsn):
    schema.upgrade(postgres_dsn, "0001_items")
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("INSERT INTO items (title) SELECT 't' || n FROM generate_series(1, 20000) n")
    schema.upgrade(postgres_dsn, "0002_items_name")
    with psycopg.connect(postgres_dsn) as conn:
        left = conn.execute(
            "SELECT count(*) FROM items WHERE name IS DISTINCT FROM title"
        ).fetchone()
        # A row's xmin is the transaction that last wrote it: one per batch of 5,000 ids.
        batches = conn.execute("SELECT count(DISTINCT xmin::text) FROM items").fetchone()
    assert left == (0,)
    assert batches == (20000 // 5000,)


def test_the_backfill_passes_ids_past_the_small_integers(postgres_dsn):
    """Batch bounds past 32,767: a bound added up in SQL from small parameters overflowed."""
    schema.upgrade(postgres_dsn, "0001_items")
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute(
            "INSERT INTO items (id, title) SELECT n, 't' || n FROM generate_series(30001, 30050) n"
        )
    schema.upgrade(postgres_dsn, "0002_items_name")
    with psycopg.connect(postgres_dsn) as conn:
        left = conn.execute("SELECT count(*) FROM items WHERE name IS DISTINCT FROM title")
        assert left.fetchone() == (0,)


@pytest.fixture
def app(tmp_path):
    """Start app/server.py with --dsn-file and --items-shape; yield a function that does."""
    procs = []

    def start(dsn: str, shape: str) -> str:
        dsn_file = tmp_path / f"dsn-{len(procs)}"
        dsn_file.write_text(dsn + "\n")
        os.chmod(dsn_file, 0o600)
        [port] = free_ports(1)
        argv = [sys.executable, f"{ROOT}/app/server.py", "--color=blue", "--version=v1"]
        argv += [f"--port={port}", f"--dsn-file={dsn_file}", f"--items-shape={shape}"]
        with open(tmp_path / f"app-{len(procs)}.log", "wb") as log:
            procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{port}"
        probe.wait_until(url + "/healthz/ready", lambda a: a.status == 200, timeout=10)
        return url

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def call(url: str, method: str = "GET", body: dict | None = None, **headers: str):
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        headers["Content-Type"] = "application/json"
    answer = probe.request(url, method=method, body=data, headers=headers)
    return answer.status, json.loads(answer.body or b"null"), answer


def test_rows_written_by_either_shape_read_correctly_in_both(postgres_dsn, app):
    schema.upgrade(postgres_dsn, "0002_items_name")
    v1, v2 = app(postgres_dsn, "v1"), app(postgres_dsn, "v2")
    key = {"Idempotency-Key": "k-1"}
    assert call(v1 + "/items", "POST", {"title": "from v1"}, **key)[:2] == (
        201,
        {"id": 1, "title": "from v1"},
    )
    assert call(v2 + "/items", "POST", {"name": "from v2"})[:2] == (
        201,
        {"id": 2, "name": "from v2"},
    )
    # The same key again: the first answer, and no second row.
    again = call(v1 + "/items", "POST", {"title": "from v1"}, **key)
    assert again[:2] == (201, {"id": 1, "title": "from v1"})
    assert call(v1 + "/items")[:2] == (
        200,
        [{"id": 1, "title": "from v1"}, {"id": 2, "title": "from v2"}],
    )
    assert call(v2 + "/items")[:2] == (
        200,
        [{"id": 1, "name": "from v1"}, {"id": 2, "name": "from v2"}],
    )
    assert call(v1 + "/items/2")[:2] == (200, {"id": 2, "title": "from v2"})
    assert call(v2 + "/items/1")[:2] == (200, {"id": 1, "name": "from v1"})
    assert call(v2 + "/items/9")[0] == 404
    assert call(v2 + "/items", "POST", {"title": "the v1 shape"})[0] == 400
    assert call(v2 + "/items/1", "DELETE")[0] == 405
    journal = call(v1 + "/_arm/writes")[1]
    assert [w["duplicate"] for w in journal] == [False, True]
    # The apps' kept connections cut (a restarted database): the next requests reconnect.
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert call(v1 + "/items/1")[:2] == (200, {"id": 1, "title": "from v1"})

    # After the contract only v2's shape is there: v1's requests fail, answered 503 to retry,
    # and its write is not kept (the same key again is tried again, not answered from memory).
    schema.upgrade(postgres_dsn, "0003_drop_title")
    assert call(v2 + "/items")[:2] == (
        200,
        [{"id": 1, "name": "from v1"}, {"id": 2, "name": "from v2"}],
    )
    status, payload, answer = call(
        v1 + "/items", "POST", {"title": "lost?"}, **{"Idempotency-Key": "k-2"}
    )
    assert (status, answer.headers.get("retry-after")) == (503, "1"), payload
    assert "UndefinedColumn" in payload["reason"]
    assert call(v1 + "/items", "POST", {"title": "lost?"}, **{"Idempotency-Key": "k-2"})[0] == 503
    assert call(v1 + "/items")[0] == 503
    assert len(call(v2 + "/items")[1]) == 2


def test_an_unreachable_database_is_answered_503_to_retry(app):
    [closed] = free_ports(1)
    url = app(f"postgresql://nobody:secret@127.0.0.1:{closed}/none?connect_timeout=2", "v2")
    for method, body in (("GET", None), ("POST", {"name": "x"})):
        status, payload, answer = call(url + "/items", method, body)
        assert (status, answer.headers.get("retry-after")) == (503, "1"), payload
        assert "secret" not in json.dumps(payload)
    assert call(url + "/")[0] == 200  # the rest of the app does not need the database


def test_the_expands_lint_clean_and_the_contract_does_not():
    assert [schema.check_expand(r) for r in ALL] == [[], [], []]  # a contract may: []
    [(_, contract)] = schema.render_sql("0002_items_name", "0003_drop_title")
    found = {(f.rule, f.statement) for f in schema.lint(contract)}
    assert ("ban-drop-column", "ALTER TABLE items DROP COLUMN title") in found
    assert (
        "adding-not-nullable-field",
        "ALTER TABLE items ALTER COLUMN name SET NOT NULL",
    ) in found


def test_the_lint_names_each_statement_and_our_rules_speak_where_squawk_is_silent():
    sql = (
        "SET lock_timeout = '5s';\nSET statement_timeout = '5min';\n"
        "ALTER TABLE items ADD COLUMN IF NOT EXISTS note text;\n"  # fine
        "ALTER TABLE items RENAME COLUMN title TO name;\n"
        "ALTER TABLE items ALTER COLUMN name TYPE varchar(10);\n"
        "CREATE INDEX items_name ON items (name);\n"
        "-- squawk-ignore ban-drop-column\n"
        "ALTER TABLE items DROP COLUMN IF EXISTS title;\n"
        f"SELECT '{'é' * 40}'; DROP TABLE IF EXISTS old_items;\n"  # squawk counts bytes
    )
    found = [(f.rule, f.statement) for f in schema.lint(sql)]
    assert ("renaming-column", "ALTER TABLE items RENAME COLUMN title TO name") in found
    assert ("changing-column-type", "ALTER TABLE items ALTER COLUMN name TYPE varchar(10)") in found
    assert ("require-concurrent-index-creation", "CREATE INDEX items_name ON items (name)") in found
    assert ("ban-drop-table", "DROP TABLE IF EXISTS old_items") in found
    # Squawk told to ignore it; our rule is not.
    assert ("drop-column", "ALTER TABLE items DROP COLUMN IF EXISTS title") in found
    # Where squawk spoke, our rule of the same kind does not repeat it.
    assert not {"rename-column", "column-type", "index-not-concurrent", "drop-table"} & {
        rule for rule, _ in found
    }
    assert not [s for _, s in found if "note" in s]
    assert all(f.message.endswith(".") for f in schema.lint(sql))
