"""The pack's own reading of a migration's SQL: the statements of an expand revision that break
the release still running, or lock a table for long.

The data stack's program lints each pending revision's SQL itself (squawk) and hands the gate its
findings; the gate reads the SQL again with these few patterns, so that an input claiming no
findings cannot hide a dropped column. Narrower than a linter on purpose: what an expand must
never hold, found in the rendered SQL (Alembic's offline mode, statements ending in `;`).

A statement on a table the same revision creates locks nobody and breaks no release: it is not a
finding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RULES = {
    "drop-column": "the release still running reads it",
    "rename-column": "the release still running uses the old name",
    "rename-table": "the release still running uses the old name",
    "column-type": "it rewrites the table under an exclusive lock, and the release still running "
    "may not read the new type",
    "not-null": "it scans the table under an exclusive lock, and refuses the writes of the release "
    "still running, which leaves the column empty",
    "index-not-concurrent": "CREATE INDEX without CONCURRENTLY blocks every write to the table "
    "until the index is built",
    "drop-table": "the release still running uses it",
}
"""Each rule of this module (the names bluegreen/schema.py gives its own checks), and why an
expand may not hold what it finds."""

FIXES = {
    "drop-column": "move it into a contract revision",
    "rename-column": "add the new column in the expand, keep both filled while both releases run, "
    "and drop the old one in a contract revision",
    "rename-table": "create the new table in the expand and drop the old one in a contract "
    "revision",
    "column-type": "add a column of the new type in the expand, backfill it, and drop the old one "
    "in a contract revision",
    "not-null": "add the column NULL and set NOT NULL in a contract revision, after the backfill",
    "index-not-concurrent": "create it CONCURRENTLY (postgresql_concurrently=True inside "
    "op.get_context().autocommit_block())",
    "drop-table": "move it into a contract revision",
}
"""How to fix what each rule finds: a refusal ends with it."""

SQUAWK = {
    "ban-drop-column": "drop-column",
    "renaming-column": "rename-column",
    "renaming-table": "rename-table",
    "changing-column-type": "column-type",
    "adding-not-nullable-field": "not-null",
    "adding-required-field": "not-null",
    "require-concurrent-index-creation": "index-not-concurrent",
    "ban-drop-table": "drop-table",
}
"""squawk's rules that find what one of ours does (the program's findings name squawk's)."""


def fix(rule: str) -> str:
    """How to fix a finding of `rule` (ours or squawk's)."""
    return FIXES.get(
        SQUAWK.get(rule, rule),
        "move it into a contract revision, or rewrite it so "
        "that it neither breaks the release still running nor locks the table",
    )


@dataclass(frozen=True)
class Finding:
    statement: str
    rule: str
    message: str


_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


def statements(sql: str) -> list[str]:
    """The statements of `sql`, comments dropped, whitespace collapsed, without the `;`. Quoted
    text and dollar-quoted bodies (a trigger's function) stay whole, whatever `;` they hold."""
    found: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
            current.append(" ")
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            current.append(" ")
        elif c in "'\"":
            j = i + 1
            while j < n and not (sql[j] == c and sql[j + 1 : j + 2] != c):
                j += 2 if sql[j] == c else 1
            current.append(sql[i : j + 1])
            i = j + 1
        elif (m := _DOLLAR.match(sql, i)) is not None:
            end = sql.find(m.group(0), m.end())
            j = n if end < 0 else end + len(m.group(0))
            current.append(sql[i:j])
            i = j
        elif c == ";":
            found.append(" ".join("".join(current).split()))
            current = []
            i += 1
        else:
            current.append(c)
            i += 1
    found.append(" ".join("".join(current).split()))
    return [s for s in found if s]


def same(a: str, b: str) -> bool:
    """Two renderings of one statement: case, whitespace and a final `;` aside; a statement shown
    cut short (ending in an ellipsis) is the same as one it begins."""

    def norm(s: str) -> str:
        return " ".join(s.split()).rstrip(";").strip().lower()

    a, b = norm(a), norm(b)
    if a.endswith("…") or b.endswith("…"):
        (short, full) = (a, b) if a.endswith("…") else (b, a)
        return full.startswith(short[:-1].rstrip())
    return a == b


def _table(name: str) -> str:
    return name.split(".")[-1].strip('"').lower()


def _actions(body: str) -> list[str]:
    """The actions of an ALTER TABLE, split at the commas outside parentheses and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, c in enumerate(body):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(body[start:i].strip())
            start = i + 1
    parts.append(body[start:].strip())
    return [p for p in parts if p]


_I = re.IGNORECASE | re.DOTALL
CREATE_TABLE = re.compile(
    r"^CREATE\s+(?:(?:GLOBAL\s+|LOCAL\s+)?(?:TEMP|TEMPORARY|UNLOGGED)\s+)?TABLE\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?([^\s(]+)",
    _I,
)
ALTER_TABLE = re.compile(r"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(\S+)\s+(.*)$", _I)
CREATE_INDEX = re.compile(
    r"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?!CONCURRENTLY\b).*?\bON\s+(?:ONLY\s+)?([^\s(]+)", _I
)
DROP_TABLE = re.compile(r"^DROP\s+TABLE\b", _I)
ACTIONS = [
    ("rename-table", re.compile(r"^RENAME\s+TO\b", _I)),
    ("rename-column", re.compile(r"^RENAME\s+(?!CONSTRAINT\b)", _I)),
    ("drop-column", re.compile(r"^DROP\s+(?!CONSTRAINT\b)", _I)),
    ("column-type", re.compile(r"^ALTER\s+(?:COLUMN\s+)?\S+\s+(?:SET\s+DATA\s+)?TYPE\b", _I)),
    ("not-null", re.compile(r"^ALTER\s+(?:COLUMN\s+)?\S+\s+SET\s+NOT\s+NULL\b", _I)),
    (
        "not-null",
        re.compile(
            r"^ADD\s+(?!CONSTRAINT\b|PRIMARY\b|UNIQUE\b|CHECK\b|FOREIGN\b|EXCLUDE\b)"
            r"(?!.*\bDEFAULT\b).*\bNOT\s+NULL\b",
            _I,
        ),
    ),
]


def check(sql: str) -> list[Finding]:
    """Every statement of `sql` an expand revision may not hold, with its rule."""
    created: set[str] = set()
    found: list[Finding] = []

    def add(statement: str, rule: str) -> None:
        found.append(Finding(statement, rule, RULES[rule]))

    for statement in statements(sql):
        if m := CREATE_TABLE.match(statement):
            created.add(_table(m.group(1)))
        elif DROP_TABLE.match(statement):
            add(statement, "drop-table")
        elif (m := CREATE_INDEX.match(statement)) and _table(m.group(1)) not in created:
            add(statement, "index-not-concurrent")
        elif (m := ALTER_TABLE.match(statement)) and _table(m.group(1)) not in created:
            for action in _actions(m.group(2)):
                rule = next((r for r, pattern in ACTIONS if pattern.match(action)), None)
                if rule is not None:
                    add(statement, rule)
                    break
    return found
