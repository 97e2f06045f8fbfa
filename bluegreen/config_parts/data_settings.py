"""The data stack's settings and what the other stacks read of it (bluegreen:schemaRevision,
bluegreen:databasePassword, bluegreen:dataStack): the shared PostgreSQL and the schema revision
each stack asks for; and the live stack's bluegreen:rollbackWindowMinutes, for how long a rollback
keeps a release's schema needs alive.

A revision is an exact id from app/migrations (bluegreen.schema.revisions()): on the data stack the
revision the database is migrated to, on an arm the revision its release needs. Any other value is
refused, naming the key, the value and the revisions there are. The password is a secret: here it
is only checked to be set, and never shown; the platform reads it with `require_secret` where it
is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bluegreen.reader import NAMESPACE, STACK, Reader

SCHEMA_REVISION = "schemaRevision"
DATABASE_PASSWORD = "databasePassword"
DATA_STACK = "dataStack"
ROLLBACK_WINDOW = "rollbackWindowMinutes"
ROLLBACK_WINDOW_MINUTES = 30
"""bluegreen:rollbackWindowMinutes when the live stack does not set it. Written here, not in
Pulumi.yaml: a declared default would reach the arm and data stacks too, which must not set it.
The policy pack assumes the same for a live stack that exports none."""
ROLLBACK_WINDOW_MAX = 10080
"""A week, in minutes."""


@dataclass(frozen=True)
class Data:
    """The data stack's own keys: where its database is migrated to, and the stacks whose
    releases a migration must not break (the policy pack reads their outputs)."""

    schema_revision: str
    """The revision the database is migrated to (never back: a lower one is refused)."""
    arm_stacks: Mapping[str, str] = field(default_factory=dict)
    """Each arm's stack (bluegreen:blueStack, bluegreen:greenStack), as the edge reads them."""
    live_stack: str = "live"
    """The edge stack (bluegreen:liveStack), whose traffic changes say which rollback is near."""


@dataclass(frozen=True)
class SchemaNeed:
    """What an arm needs of the data stack: set only when bluegreen:schemaRevision is."""

    revision: str
    """The revision this arm's release needs applied."""
    data_stack: str
    """The data stack to read (bluegreen:dataStack), as configured."""


def revision_ids() -> list[str]:
    """The revisions of app/migrations, oldest first (imported here, on first use: only a stack
    that names a revision pays for reading the script directory)."""
    from bluegreen import schema

    return [r.id for r in schema.revisions()]


def read_revision(read: Reader, why: str | None) -> str | None:
    """bluegreen:schemaRevision, checked against app/migrations. `why` (": ..."): it is required
    here, and why, said when it is not set. None: not set (and not required)."""
    value = read.optional(SCHEMA_REVISION)
    if value is None and why is None:
        return None
    ids = revision_ids()
    allowed = "one of the revisions in app/migrations (" + ", ".join(ids) + ")"
    if value is None:
        read.missing(SCHEMA_REVISION, f"{why}: {allowed}")
    elif value not in ids:
        read.problem(SCHEMA_REVISION, value, allowed)
    return value


def _no_password(read: Reader, role: str) -> None:
    """The password belongs on the data stack alone; named here, never shown."""
    if read.optional(DATABASE_PASSWORD) is not None:
        read.problems.append(
            f"{NAMESPACE}:{DATABASE_PASSWORD} belongs only in the data stack (Pulumi.data.yaml), "
            f'but {role} stack "{read.stack}" sets it: remove it here'
        )


def _stack(read: Reader, key: str) -> str:
    return read.matching(key, STACK)


def read_data(read: Reader) -> Data:
    """The data stack's keys; every problem goes to `read`."""
    where = f' for data stack "{read.stack}"'
    revision = read_revision(read, f"{where}: set the revision to migrate the database to")
    if read.optional(DATABASE_PASSWORD) is None:
        read.missing(
            DATABASE_PASSWORD,
            f"{where}: set the database's password with: pulumi config set --secret --stack "
            f"{read.stack} {NAMESPACE}:{DATABASE_PASSWORD} <password>",
        )
    return Data(
        schema_revision=revision or "",
        arm_stacks={c: _stack(read, f"{c}Stack") for c in ("blue", "green")},
        live_stack=_stack(read, "liveStack"),
    )


def read_need(read: Reader) -> SchemaNeed | None:
    """An arm's need of the data stack, or None for an arm that keeps no data."""
    _no_password(read, "arm")
    revision = read_revision(read, None)
    data_stack = _stack(read, DATA_STACK)
    return SchemaNeed(revision, data_stack) if revision is not None else None


def read_edge_data(read: Reader) -> str:
    """The data stack the edge reads the applied revisions of (bluegreen:dataStack); the data
    keys an edge stack must not set are refused."""
    _no_password(read, "edge")
    revision = read.optional(SCHEMA_REVISION)
    if revision is not None:
        read.problems.append(
            f"{NAMESPACE}:{SCHEMA_REVISION} belongs only in an arm stack or the data stack, but "
            f'edge stack "{read.stack}" sets it to "{revision}": remove it here'
        )
    return _stack(read, DATA_STACK)


def read_rollback_window(read: Reader) -> int:
    """bluegreen:rollbackWindowMinutes on the live stack: after traffic leaves an arm, for how many
    minutes a rollback to it is still possible (the policy pack holds back a contract revision that
    removes a shape its release needs until then). Unset: `ROLLBACK_WINDOW_MINUTES`."""
    raw = read.optional(ROLLBACK_WINDOW)
    if raw is None:
        return ROLLBACK_WINDOW_MINUTES
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= ROLLBACK_WINDOW_MAX:
        read.problem(
            ROLLBACK_WINDOW, raw, f"an integer from 0 to {ROLLBACK_WINDOW_MAX} (minutes; a week)"
        )
        return ROLLBACK_WINDOW_MINUTES
    return value
