"""The data stack's migration as a Pulumi resource: the database brought up to
bluegreen:schemaRevision with Alembic (bluegreen.schema.upgrade), on every platform alike.

Inputs: `dsn` (a secret), `target`, `database` (what tells this database from one made in its
place: a new one is migrated again), and what the policy pack judges, which decides nothing here:
`stack`, `applied` (as the stack last recorded it), `revisions` ([{id, phase, contracts}],
app/migrations in order), `pending` ([{revision, phase, sql, findings}], what this update would
apply, rendered offline and linted), `armStacks` and `liveStack`. Outputs: `applied` (the
revisions applied, oldest first) and `current`.

It only ever migrates up: a target before what the database has applied is refused (the program
refuses it first, from the stack's last outputs, before anything changes; this is the check
against the database itself). Its diff looks at the target, the DSN and the database only, so an
update that asks for nothing new changes nothing. Deleting it leaves the schema to its database.

This module keeps its name and place: its provider is pickled into the stack's state by module
path.
"""

from __future__ import annotations

import time
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

_DECIDES = ("dsn", "target", "database")
_WAIT_S = 60.0
"""How long the migration waits for a database that is starting to accept connections."""


def _wait(dsn: str) -> None:
    import psycopg

    deadline = time.monotonic() + _WAIT_S
    while True:
        try:
            psycopg.connect(dsn, connect_timeout=5).close()
            return
        except psycopg.OperationalError as err:
            # "starting up" and refused connections pass; a wrong password does not.
            if "password" in str(err) or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the database did not take a connection: {str(err).strip()}"
                ) from None
            time.sleep(0.2)


def refusal(target: str, current: str, stack: str) -> str:
    """The message of a target before what is applied (the program's and the provider's)."""
    return (
        f'bluegreen:schemaRevision is "{target}", but the database of stack "{stack}" is at '
        f"{current} already: bluegreen never migrates a database down (an older arm runs on a "
        f"newer expand; undo a change with a new revision): set bluegreen:schemaRevision to "
        f"{current} or a later revision (nothing was changed)"
    )


def _migrate(props: dict[str, Any]) -> dict[str, Any]:
    from bluegreen import schema

    dsn, target = props["dsn"], props["target"]
    _wait(dsn)
    done = schema.applied(dsn)
    if done and schema.index(done[-1]) > schema.index(target):
        stack = str(props.get("stack") or "data").rsplit("/", 1)[-1]
        raise RuntimeError(refusal(target, done[-1], stack))
    applied = schema.upgrade(dsn, target)
    return {
        **{k: props.get(k) for k in (*_DECIDES, "stack")},
        "applied": applied,
        "current": applied[-1] if applied else None,
    }


class MigrationProvider(ResourceProvider):
    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="migration", outs=_migrate(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in _DECIDES if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_migrate(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        return None  # the schema is its database's: it goes with it, or stays with it


class Migration(Resource, module="data", name="Migration"):
    """The database at bluegreen:schemaRevision; `applied` and `current` say what it has."""

    applied: pulumi.Output[list[str]]
    current: pulumi.Output[str]

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["dsn"])
        )
        super().__init__(
            MigrationProvider(), name, {"applied": None, "current": None, **props}, opts
        )
