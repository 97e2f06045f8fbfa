"""The database's schema revisions: Alembic's script directory (app/migrations) read as an ordered
list of expand and contract revisions, applied to a database, rendered as SQL, and linted.

Each revision module says its `phase`: an "expand" only adds what the code before it can ignore,
so both the old and the new release run on after it; a "contract" removes what an older release
needs, and names in `contracts` the expand whose old shape it removes (every arm must need that
revision or a later one). An expand must lint clean: its SQL, rendered offline as
`alembic upgrade a:b --sql` renders it, goes through squawk (the squawk-cli wheel's binary) and
through CHECKS, our own rules for what squawk does not say; a contract may do anything.

The DSN reaches Alembic in code (the config's `sqlalchemy.url`), never on a command line.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import URL

SCRIPTS = Path(__file__).resolve().parent.parent / "app" / "migrations"
PHASES = ("expand", "contract")

# Squawk's rules of taste rather than of locks or clients: they flag a column's declared type
# (varchar, serial, int), as in Alembic's own version table, where neither is at stake.
STYLE_RULES = (
    "prefer-text-field",
    "prefer-identity",
    "prefer-bigint-over-int",
    "prefer-bigint-over-smallint",
)


@dataclass(frozen=True)
class Revision:
    id: str
    phase: str  # "expand" or "contract"
    contracts: str | None  # a contract's: the expand whose old shape it removes
    down: str | None  # the revision before it (None for the first)


@dataclass(frozen=True)
class Finding:
    statement: str  # the statement's text, whitespace collapsed, trimmed
    rule: str  # squawk's rule name, or one of CHECKS
    message: str  # why, in a sentence


def revisions(*, scripts: Path = SCRIPTS) -> list[Revision]:
    """The revisions of the script directory, first to last; ValueError on a branch, or on a
    revision without a valid `phase`, or a contract without a valid `contracts`."""
    directory = ScriptDirectory(str(scripts))
    if len(directory.get_heads()) > 1:
        raise ValueError(f"{scripts}: the revisions branch ({', '.join(directory.get_heads())})")
    found: list[Revision] = []
    for script in reversed(list(directory.walk_revisions())):
        phase = getattr(script.module, "phase", None)
        contracts = getattr(script.module, "contracts", None)
        where = f"{scripts}: revision {script.revision}"
        if phase not in PHASES:
            raise ValueError(f'{where} says phase = {phase!r}: "expand" or "contract"')
        earlier = [r.id for r in found]
        if phase == "contract" and contracts not in earlier:
            raise ValueError(
                f"{where} is a contract: `contracts` must name the expand before it whose old "
                f"shape it removes (one of {', '.join(earlier) or 'none'}), not {contracts!r}"
            )
        if phase == "expand" and contracts is not None:
            raise ValueError(f"{where} is an expand: it contracts nothing")
        down = script.down_revision
        found.append(Revision(script.revision, phase, contracts, down))
    return found


def index(rev: str, *, scripts: Path = SCRIPTS) -> int:
    """The position of `rev` in revisions(); ValueError naming the revisions there are."""
    ids = [r.id for r in revisions(scripts=scripts)]
    if rev not in ids:
        raise ValueError(f"no revision {rev!r} in {scripts}: the revisions are {', '.join(ids)}")
    return ids.index(rev)


def url(dsn: str) -> str:
    """A libpq DSN (URL, or key=value words) as SQLAlchemy's URL for psycopg 3."""
    scheme, sep, rest = dsn.partition("://")
    if sep and scheme in ("postgres", "postgresql"):
        return "postgresql+psycopg://" + rest
    if sep and scheme == "postgresql+psycopg":
        return dsn
    words = {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    return URL.create("postgresql+psycopg", query=words).render_as_string(hide_password=False)


def _config(dsn: str | None, scripts: Path, output: io.StringIO | None = None) -> Config:
    config = Config(output_buffer=output)
    config.set_main_option("script_location", str(scripts))
    # set_main_option interpolates: a % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", url(dsn or "postgresql://").replace("%", "%%"))
    return config


def applied(dsn: str, *, scripts: Path = SCRIPTS) -> list[str]:
    """The revisions applied to the database, in order ([] for a database never migrated).
    Alembic keeps only the head in alembic_version: the rest is the head's ancestry."""
    engine = create_engine(url(dsn), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            heads = MigrationContext.configure(connection).get_current_heads()
    finally:
        engine.dispose()
    if not heads:
        return []
    if len(heads) > 1:
        raise ValueError(f"the database has several heads: {', '.join(heads)}")
    try:
        ancestry = list(ScriptDirectory(str(scripts)).iterate_revisions(heads[0], "base"))
    except CommandError as e:
        raise ValueError(f"the database is at {heads[0]}, which {scripts} does not have") from e
    return [script.revision for script in reversed(ancestry)]


def upgrade(dsn: str, target: str, *, scripts: Path = SCRIPTS) -> list[str]:
    """Migrate the database up to `target` (revisions in between included); never down: a
    target before the database's revision is a ValueError. Returns applied()."""
    goal = index(target, scripts=scripts)
    done = applied(dsn, scripts=scripts)
    if done and index(done[-1], scripts=scripts) > goal:
        raise ValueError(
            f"the database is at {done[-1]}, after {target}: bluegreen never migrates down "
            "(undo a change with a new revision)"
        )
    command.upgrade(_config(dsn, scripts), target)
    return applied(dsn, scripts=scripts)


def render_sql(
    from_rev: str | None, to_rev: str, *, scripts: Path = SCRIPTS
) -> list[tuple[str, str]]:
    """The SQL of each revision after `from_rev` (None: from an empty database) up to `to_rev`,
    as (revision, sql), rendered offline without a database."""
    ids = [r.id for r in revisions(scripts=scripts)]
    start = 0 if from_rev is None else index(from_rev, scripts=scripts) + 1
    end = index(to_rev, scripts=scripts)
    if end < start:
        raise ValueError(f"{to_rev} is not after {from_rev}")
    rendered = []
    for i in range(start, end + 1):
        output = io.StringIO()
        step = ids[i] if i == 0 else f"{ids[i - 1]}:{ids[i]}"
        command.upgrade(_config(None, scripts, output), step, sql=True)
        rendered.append((ids[i], output.getvalue()))
    return rendered


def check_expand(rev: str, *, scripts: Path = SCRIPTS) -> list[Finding]:
    """What forbids `rev` by its phase: an expand's lint findings (it must have none); a
    contract may lock and remove, so for one this is []."""
    revision = revisions(scripts=scripts)[index(rev, scripts=scripts)]
    if revision.phase != "expand":
        return []
    [(_, sql)] = render_sql(revision.down, rev, scripts=scripts)
    return lint(sql)


# --- The lint ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(\$\w*\$)|;", re.S)


def statements(sql: str) -> list[tuple[int, int, str]]:
    """The statements of `sql` as (start, end, text) with the spans covering all of it: the
    comments before a statement and its `;` belong to it. Quotes, dollar quotes and comments
    are skipped whole, so a `;` in a function's body splits nothing."""
    spans, start, pos = [], 0, 0
    while (m := _TOKEN.search(sql, pos)) is not None:
        pos = m.end()
        if m.group(1):  # a dollar quote: to its closing tag
            close = sql.find(m.group(1), pos)
            pos = len(sql) if close < 0 else close + len(m.group(1))
        elif m.group() == ";":
            spans.append((start, pos, sql[start:pos]))
            start = pos
    if sql[start:].strip():
        spans.append((start, len(sql), sql[start:]))
    return spans


def _bare(text: str) -> str:
    """A statement without its comments, whitespace collapsed."""
    kept = _TOKEN.sub(lambda m: "" if m.group().startswith(("--", "/*")) else m.group(), text)
    return " ".join(kept.split()).rstrip(";").strip()


def _shown(text: str, width: int = 200) -> str:
    bare = _bare(text)
    return bare if len(bare) <= width else bare[: width - 1] + "…"


CHECKS = {
    "drop-column": "Dropping a column breaks the release still reading or writing it.",
    "rename-column": "Renaming a column breaks the release that uses the old name.",
    "rename-table": "Renaming a table breaks the release that uses the old name.",
    "column-type": "Changing a column's type rewrites the table under an exclusive lock "
    "and can break the release reading it.",
    "not-null": "A NOT NULL without a default scans the table under an exclusive lock and "
    "breaks the release that does not write the column.",
    "index-not-concurrent": "CREATE INDEX without CONCURRENTLY blocks writes to the table "
    "while the index builds.",
    "drop-table": "Dropping a table breaks the release still using it.",
}
"""Our rules, by name: what a rollback-safe expand must not do."""

SQUAWK_SAYS = {
    "drop-column": {"ban-drop-column"},
    "rename-column": {"renaming-column"},
    "rename-table": {"renaming-table"},
    "column-type": {"changing-column-type"},
    "not-null": {"adding-not-nullable-field", "adding-required-field"},
    "index-not-concurrent": {"require-concurrent-index-creation"},
    "drop-table": {"ban-drop-table"},
}
"""Squawk's rules that say the same: where squawk spoke, ours stay silent."""

_NAME = r'(?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))?'
_ALTER = re.compile(rf"ALTER TABLE (?:IF EXISTS )?(?:ONLY )?{_NAME} (.*)", re.I | re.S)
_ACTIONS = [
    ("drop-column", re.compile(r"DROP (?!CONSTRAINT\b)", re.I)),
    ("rename-table", re.compile(r"RENAME TO\b", re.I)),
    ("rename-column", re.compile(rf"RENAME (?:COLUMN )?(?!CONSTRAINT\b){_NAME} TO\b", re.I)),
    ("column-type", re.compile(rf"ALTER (?:COLUMN )?{_NAME} (?:SET DATA )?TYPE\b", re.I)),
    ("not-null", re.compile(rf"ALTER (?:COLUMN )?{_NAME} SET NOT NULL\b", re.I)),
    (
        "not-null",
        re.compile(
            r"ADD (?!CONSTRAINT|PRIMARY|UNIQUE|CHECK|FOREIGN|EXCLUDE)"
            r"(?=.*\bNOT NULL\b)(?!.*\bDEFAULT\b)",
            re.I | re.S,
        ),
    ),
]
_CREATE_TABLE = re.compile(rf"CREATE (?:UNLOGGED )?TABLE (?:IF NOT EXISTS )?({_NAME})", re.I)
_INDEX = re.compile(
    rf"CREATE (?:UNIQUE )?INDEX (?!CONCURRENTLY\b).*? ON (?:ONLY )?({_NAME})", re.I | re.S
)
_DROP_TABLE = re.compile(r"DROP TABLE\b", re.I)


def _actions(rest: str) -> list[str]:
    """An ALTER TABLE's actions: `rest` split at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(rest):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if c == "," and depth == 0:
            parts.append(rest[start:i].strip())
            start = i + 1
    return [*parts, rest[start:].strip()]


def checks(sql: str) -> list[Finding]:
    """Our own rules (CHECKS) over `sql`, in the order of its statements; no process runs."""
    return [f for each in _checked(statements(sql)) for f in each]


def _checked(spans: list[tuple[int, int, str]]) -> list[list[Finding]]:
    """CHECKS' findings on each statement."""
    found, created = [], set()
    for _, _, text in spans:
        bare = _bare(text)
        rules = []
        if m := _ALTER.match(bare):
            for action in _actions(m.group(1)):
                rules += [rule for rule, p in _ACTIONS if p.match(action) and rule not in rules]
        elif m := _CREATE_TABLE.match(bare):
            created.add(m.group(1).strip('"').lower())
        elif (m := _INDEX.match(bare)) and m.group(1).strip('"').lower() not in created:
            rules.append("index-not-concurrent")  # an index on a new, empty table blocks nobody
        elif _DROP_TABLE.match(bare):
            rules.append("drop-table")
        found.append([Finding(_shown(text), rule, CHECKS[rule]) for rule in rules])
    return found


def squawk_path() -> str:
    """The squawk binary the squawk-cli wheel installed next to this Python, else on PATH."""
    beside = Path(sys.executable).parent / "squawk"
    found = str(beside) if beside.exists() else shutil.which("squawk")
    if found is None:
        raise RuntimeError("squawk not found: pip install squawk-cli (see requirements.txt)")
    return found


def lint(sql: str) -> list[Finding]:
    """squawk's findings on `sql` (its STYLE_RULES aside), then ours where squawk said nothing
    of the kind on that statement; in the order of the statements."""
    run = subprocess.run(
        [squawk_path(), "--reporter", "json", "--exclude", ",".join(STYLE_RULES)],
        input=sql,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if run.returncode not in (0, 1):
        raise RuntimeError(f"squawk failed ({run.returncode}): {run.stderr.strip()[-1000:]}")
    spans = statements(sql)
    lines = sql.split("\n")
    starts = [0]
    for text in lines:
        starts.append(starts[-1] + len(text) + 1)
    said: dict[int, list[tuple[str, str]]] = {}
    for item in json.loads(run.stdout or "[]"):
        # squawk counts lines from 0, and columns from 0 in bytes
        line = min(int(item["line"]), len(lines) - 1)
        offset = starts[line] + len(
            lines[line].encode()[: int(item["column"])].decode("utf-8", "ignore")
        )
        at = next((i for i, (s, e, _) in enumerate(spans) if s <= offset < e), len(spans) - 1)
        said.setdefault(at, []).append((item["rule_name"], item["message"]))
    found = []
    for i, ours in enumerate(_checked(spans)):
        rules = {rule for rule, _ in said.get(i, [])}
        found += [Finding(_shown(spans[i][2]), r, message) for r, message in said.get(i, [])]
        found += [f for f in ours if not SQUAWK_SAYS[f.rule] & rules]
    return found
