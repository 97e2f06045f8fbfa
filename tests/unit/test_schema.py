"""The schema's revisions as bluegreen reads them, their SQL rendered offline, and our own lint
rules (bluegreen/schema.py over app/migrations). Squawk, a process, is run in
tests/integration/test_items.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bluegreen import schema
from bluegreen.schema import Revision

ALL = ["0001_items", "0002_items_name", "0003_drop_title"]


def test_the_revisions_in_order_with_their_phases():
    assert schema.revisions() == [
        Revision("0001_items", "expand", None, None),
        Revision("0002_items_name", "expand", None, "0001_items"),
        Revision("0003_drop_title", "contract", "0002_items_name", "0002_items_name"),
    ]
    assert [schema.index(r) for r in ALL] == [0, 1, 2]
    with pytest.raises(ValueError, match="0001_items, 0002_items_name, 0003_drop_title"):
        schema.index("0002_items")


def revision(versions: Path, rev: str, down: str | None, body: str) -> None:
    (versions / f"{rev}.py").write_text(
        f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = None\n"
        f"depends_on = None\n{body}\ndef upgrade():\n    pass\n"
    )


@pytest.mark.parametrize(
    "second, refused",
    [
        ('phase = "contract"\n', "contracts` must name the expand before it"),
        ('phase = "contract"\ncontracts = "b"\n', "contracts` must name the expand before it"),
        ('phase = "shrink"\n', "says phase = 'shrink'"),
        ("", "says phase = None"),
        ('phase = "expand"\ncontracts = "a"\n', "is an expand: it contracts nothing"),
    ],
)
def test_a_revision_must_say_its_phase_and_a_contract_what_it_contracts(tmp_path, second, refused):
    (tmp_path / "versions").mkdir()
    revision(tmp_path / "versions", "a", None, 'phase = "expand"\n')
    revision(tmp_path / "versions", "b", "a", second)
    with pytest.raises(ValueError, match=refused):
        schema.revisions(scripts=tmp_path)


def test_each_revision_renders_as_the_sql_it_runs():
    rendered = dict(schema.render_sql(None, "0003_drop_title"))
    assert list(rendered) == ALL
    assert rendered == dict(
        schema.render_sql(None, "0001_items") + schema.render_sql("0001_items", "0003_drop_title")
    )
    for sql in rendered.values():  # every revision: bounded lock waits and statements
        assert sql.startswith("SET lock_timeout = '5s';\n\nSET statement_timeout = '5min';")
    assert "CREATE TABLE items (" in rendered["0001_items"]
    expand = rendered["0002_items_name"]
    assert "ALTER TABLE items ADD COLUMN IF NOT EXISTS name TEXT;" in expand
    assert "CREATE OR REPLACE TRIGGER items_title_name BEFORE INSERT OR UPDATE ON items" in expand
    # The backfill leaves the revision's transaction: each batch is a transaction of its own.
    ddl, backfill = expand.split("COMMIT;", 1)
    assert "CREATE OR REPLACE TRIGGER" in ddl
    assert "UPDATE items SET name = title WHERE id >= 1 AND id < 5001" in backfill
    assert "ALTER TABLE items DROP COLUMN title;" in rendered["0003_drop_title"]
    with pytest.raises(ValueError, match="is not after"):
        schema.render_sql("0002_items_name", "0001_items")


SAMPLE = {
    "drop-column": "ALTER TABLE ONLY items DROP title",
    "rename-column": "ALTER TABLE items RENAME COLUMN title TO name",
    "rename-table": "ALTER TABLE items RENAME TO things",
    "column-type": "ALTER TABLE items ALTER COLUMN name SET DATA TYPE varchar(10)",
    "not-null": "ALTER TABLE items ALTER name SET NOT NULL",
    "index-not-concurrent": "CREATE UNIQUE INDEX items_name ON items (name)",
    "drop-table": "DROP TABLE IF EXISTS items",
}


@pytest.mark.parametrize("rule", sorted(SAMPLE))
def test_each_of_our_rules_names_the_statement_and_why(rule):
    sql = f"-- a comment\nSET lock_timeout = '5s';\n/* before */ {SAMPLE[rule]} ;\n"
    [found] = schema.checks(sql)
    assert (found.rule, found.statement) == (rule, SAMPLE[rule])
    assert found.message == schema.CHECKS[rule] and found.message.endswith(".")


def test_what_an_expand_may_do_is_not_found():
    sql = """
        ALTER TABLE items ADD COLUMN note text, ADD COLUMN n bigint NOT NULL DEFAULT 0;
        ALTER TABLE items ALTER COLUMN note SET DEFAULT 'x', DROP CONSTRAINT items_old_check;
        ALTER TABLE items ADD CONSTRAINT c CHECK (note IS NOT NULL) NOT VALID;
        CREATE INDEX CONCURRENTLY items_note ON items (note);
        CREATE TABLE "Tags" (id bigint PRIMARY KEY, label text NOT NULL);
        CREATE INDEX tags_label ON "Tags" (label);
        CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN EXECUTE 'DROP TABLE items; ALTER TABLE items DROP COLUMN title'; RETURN NEW; END
        $body$;
        SELECT 'ALTER TABLE items DROP COLUMN title;';
    """
    assert schema.checks(sql) == []


def test_several_actions_of_one_alter_are_each_checked():
    sql = "ALTER TABLE items ADD COLUMN n bigint NOT NULL, DROP COLUMN title, ALTER a TYPE text;"
    assert [f.rule for f in schema.checks(sql)] == ["not-null", "drop-column", "column-type"]


def test_our_rules_pass_the_expands_and_find_the_contract():
    rendered = dict(schema.render_sql(None, "0003_drop_title"))
    assert schema.checks(rendered["0001_items"] + rendered["0002_items_name"]) == []
    assert [(f.rule, f.statement) for f in schema.checks(rendered["0003_drop_title"])] == [
        ("not-null", "ALTER TABLE items ALTER COLUMN name SET NOT NULL"),
        ("drop-column", "ALTER TABLE items DROP COLUMN title"),
    ]


def test_statements_keep_quotes_dollar_quotes_and_comments_whole():
    sql = "SELECT ';'; -- a ; here\nDO $x$ BEGIN PERFORM 1; END $x$;\n/* ; */ SELECT \"a;b\";  "
    assert [text for _, _, text in schema.statements(sql)] == [
        "SELECT ';';",
        " -- a ; here\nDO $x$ BEGIN PERFORM 1; END $x$;",
        '\n/* ; */ SELECT "a;b";',
    ]


def test_a_dsn_becomes_a_psycopg_url():
    assert schema.url("postgresql://u:p@h:5/db") == "postgresql+psycopg://u:p@h:5/db"
    assert schema.url("postgres://u@h/db?sslmode=require") == (
        "postgresql+psycopg://u@h/db?sslmode=require"
    )
    assert schema.url("host=h port=5 user=u password='a b%' dbname=db") == (
        "postgresql+psycopg://?dbname=db&host=h&password=a+b%25&port=5&user=u"
    )


def test_squawk_is_the_wheels_binary_beside_python():
    found = schema.squawk_path()
    assert os.access(found, os.X_OK) and Path(found).name == "squawk"
