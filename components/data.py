"""The data stack (`bluegreen:index:Data`): the database the arms share, migrated to
bluegreen:schemaRevision; and how an arm reads it (`data_from_stack`).

The data stack deploys first (data, then the arms, then live): an arm that needs a revision reads
the data stack's outputs, `dsn` (a secret) and `schema` ({current, applied, phases, floor}),
through a StackReference, and a flip never touches the database. `floor` is what the newest
applied contract `contracts` (null before any): a release needing a revision before it needs a
shape that is gone, which the policy pack refuses though that revision is in `applied`.

The component's inputs, and the Migration's, are what the policy pack judges a data deploy by:
the target, the revisions with their phases, and `pending`, the SQL of each revision this update
would apply (rendered offline from what the stack last recorded as applied up to the target) with
its lint findings. A target before what is applied is refused here, before anything changes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pulumi

from bluegreen import schema
from bluegreen.config import ArmSettings, DataSettings
from bluegreen.live_stack import SchemaOutputs
from components.naming import qualified
from platforms.base import DataLink, DataPlatform
from platforms.migration import Migration, refusal
from platforms.stack_outputs import read_outputs


@dataclass(frozen=True)
class DataArgs:
    settings: DataSettings
    """The data stack's validated config."""
    platform: DataPlatform
    """The adapter, with its own validated keys, that runs the database."""


def data_schema(data_stack: str) -> SchemaOutputs | None:
    """The data stack's `schema` as it last recorded it; None where there is no data stack (or it
    was never deployed): the edge of a project without one judges no schema."""
    found = (read_outputs(qualified(data_stack)) or {}).get("schema")
    ok = isinstance(found, dict) and isinstance(found.get("applied"), list)
    return SchemaOutputs.from_outputs(found) if ok else None


def data_applied(data_stack: str) -> list[str] | None:
    """What the data stack has applied, as it last recorded it; None as for `data_schema`."""
    found = data_schema(data_stack)
    return None if found is None else list(found.applied)


def floor(applied: list[str], revisions: list[schema.Revision]) -> str | None:
    """What the newest applied contract `contracts`: the oldest revision a release may still need
    (None: no contract applied)."""
    known = {r.id: r for r in revisions}
    for rev in reversed(applied):
        if rev in known and known[rev].phase == "contract":
            return known[rev].contracts
    return None


def _finding(found: Any) -> dict:
    return dataclasses.asdict(found) if dataclasses.is_dataclass(found) else dict(found)


def pending(applied: list[str], target: str, phases: dict[str, str]) -> list[dict]:
    """What an update from `applied` to `target` would run: each revision's SQL and findings."""
    start = applied[-1] if applied else None
    if start is not None and schema.index(start) >= schema.index(target):
        return []
    return [
        {
            "revision": rev,
            "phase": phases[rev],
            "sql": sql,
            "findings": [_finding(f) for f in schema.lint(sql)],
        }
        for rev, sql in schema.render_sql(start, target)
    ]


class Data(pulumi.ComponentResource):
    """The database the arms share, at the schema revision the data stack asks for."""

    dsn: pulumi.Output[str]
    schema: pulumi.Output[dict]

    def __init__(self, name: str, args: DataArgs, opts: pulumi.ResourceOptions | None = None):
        s = args.settings
        target = s.data.schema_revision
        revisions = schema.revisions()
        phases = {r.id: r.phase for r in revisions}
        applied = data_applied(s.stack) or []  # as this stack last recorded it
        if applied and schema.index(applied[-1]) > schema.index(target):
            raise pulumi.RunError(refusal(target, applied[-1], s.stack))
        listed = [{"id": r.id, "phase": r.phase, "contracts": r.contracts} for r in revisions]
        # Only what the config decides: what is applied now changes with every migration, and as
        # an input here it would show as a change on the next update that asks for nothing new.
        # It is the Migration's `pending` (whose diff ignores it) and the stack's `schema` output.
        gate = {
            "stack": qualified(s.stack),
            "schemaRevision": target,
            "revisions": listed,
            "freezeOverride": s.freeze_override,
        }
        super().__init__("bluegreen:index:Data", name, gate, opts)
        served = args.platform.database(name, self, s)
        migration = Migration(
            f"{name}-migration",
            {
                "stack": qualified(s.stack),
                "dsn": served.dsn,
                "database": served.instance,
                "target": target,
                # What the pack judges: what is applied (as last recorded), what this update
                # would apply, and the stacks whose releases it must not break.
                "applied": applied,
                "revisions": listed,
                "pending": pending(applied, target, phases),
                "armStacks": {c: qualified(n) for c, n in s.data.arm_stacks.items()},
                "liveStack": qualified(s.data.live_stack),
            },
            pulumi.ResourceOptions(parent=self),
        )
        self.dsn = pulumi.Output.secret(served.dsn)
        self.schema = pulumi.Output.all(migration.applied, migration.current).apply(
            lambda a: {
                "current": a[1],
                "applied": a[0],
                "phases": phases,
                "floor": floor(list(a[0] or []), revisions),
            }
        )
        self.register_outputs({"dsn": self.dsn, "schema": self.schema})


def _require_data_stack(name: str, s: ArmSettings) -> dict:
    """The data stack's outputs; fail closed, in the program's words, when it is missing or was
    never deployed (a StackReference alone would fail with the engine's bare "unknown stack")."""
    assert s.schema is not None
    configured = s.schema.data_stack
    outputs = read_outputs(name)
    if outputs is None:
        raise pulumi.RunError(
            f'bluegreen:dataStack is "{configured}", but stack "{name}" does not exist: deploy '
            f"the data stack first (`pulumi up -s {configured}`), or set bluegreen:dataStack in "
            f"Pulumi.{s.stack}.yaml to the stack that holds the database (see `pulumi stack "
            "ls`). Nothing was changed."
        )
    if not outputs.get("dsn") or not isinstance(outputs.get("schema"), dict):
        raise pulumi.RunError(
            f'The data stack "{name}" has no dsn or schema output: deploy it first with '
            f"`pulumi up -s {configured}`, or check bluegreen:dataStack. Nothing was changed."
        )
    return outputs


def data_from_stack(s: ArmSettings) -> DataLink | None:
    """What an arm with bluegreen:schemaRevision reads of the data stack; None without it (an arm
    that keeps no data declares nothing more than it ever did)."""
    if s.schema is None:
        return None
    name = qualified(s.schema.data_stack)
    _require_data_stack(name, s)
    ref = pulumi.StackReference("data", stack_name=name)
    found = ref.get_output("schema").apply(SchemaOutputs.from_outputs)
    return DataLink(
        stack=name,
        needs=s.schema.revision,
        dsn=pulumi.Output.secret(ref.get_output("dsn")),
        applied=found.apply(lambda v: list(v.applied)),
        floor=found.apply(lambda v: v.floor),
        floor_contract=found.apply(lambda v: v.floor_contract),
    )
