"""The data guards: the database the arms share never breaks a release that runs, nor one a
rollback would bring back.

- **bluegreen-schema-applied**, on `bluegreen:index:Arm` and `bluegreen:index:Edge`: an arm is not
  deployed, and traffic does not move to it, before the data stack applied the schema revision
  its release needs, nor once an applied contract removed the shape it needs: a revision before
  the `floor` (what the newest applied contract `contracts`, named by `floorContract`) in
  `applied`'s order. The arm's input `schema` is {"needs", "applied", "dataStack", "floor",
  "floorContract"}; the edge's is {"arms": {colour: revision or null}, "applied", "dataStack",
  "floor", "floorContract"}. Absent: nothing needs a schema; no `floor`: no contract applied.
- **bluegreen-contract-safe**, on the data stack's migration (observed.MIGRATIONS): a contract
  revision removes the shape of the expand it `contracts` only when no arm stack needs a revision
  before that one (each arm stack's `schemaRevision` output), and no rollback to a release that
  did is still possible: the live stack's last traffic change away from such a release is older
  than its `rollbackWindowMinutes` (30 when it exports none). What a release needed when traffic
  left it is what the live stack's evidence record says (`schema.from`/`schema.to`: {"color",
  "needs"}), else what its arm stack needs now.
- **bluegreen-expand-safe**, on the migration: an expand holds no statement that breaks the release
  still running or locks a table for long: neither one of the program's findings (squawk's and
  bluegreen/schema.py's), nor one the pack finds in the SQL itself (ddl_checks.py), so an input
  claiming no findings hides nothing.

The migration's inputs: {"target", "applied", "revisions": [{"id", "phase", "contracts"}] in
order, "pending": [{"revision", "phase", "sql", "findings": [{"statement", "rule", "message"}]}],
"armStacks": {colour: stack}, "liveStack"}; the stacks by their whole org/project/name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy

from bluegreen_policy import ddl_checks, settings
from bluegreen_policy.observed import (
    ARM,
    EDGE,
    MIGRATION_INPUTS,
    MIGRATIONS,
    Report,
    config_of,
    inputs,
    migration_observed,
    no_config,
    short,
    stack_name,
    step_verb,
)

# Tests pin the clock; everything else reads the real one.
now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731

WINDOW_MINUTES = 30
"""How long after traffic left a release a rollback to it counts as possible, when the live stack
exports no `rollbackWindowMinutes` (its bluegreen:rollbackWindowMinutes, 30 by default)."""


def _listed(revisions: list[str]) -> str:
    return ", ".join(revisions) or "none"


# --- 1. the revision an arm needs is applied -----------------------------------------------------


def schema_applied(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type not in (ARM, EDGE):
        return
    if not config_of(args, no_config(settings.SCHEMA_APPLIED), report):
        return
    props = inputs(args, ("schema", "stack", "color", "weights"))
    schema = props.get("schema")
    if not isinstance(schema, Mapping):
        return
    applied = list(schema.get("applied") or [])
    data = short(schema.get("dataStack")) or "data"
    floor, contract = schema.get("floor"), schema.get("floorContract")

    def refusal(need: str, then: str) -> str:
        if need not in applied:
            return (
                f"needs schema revision {need}, which is not applied on data stack {data} "
                f"(applied: {_listed(applied)}). Apply it first: set bluegreen:schemaRevision "
                f"{need} on the data stack and `pulumi up -s {data}`, then {then}."
            )
        by = f"the applied contract {contract}" if contract else "an applied contract"
        return (
            f"needs schema revision {need}, whose shape {by} removed: deploy a release that "
            f"needs {floor} or later."
        )

    def refused(need: Any) -> bool:
        """Not applied, or before the floor in `applied`'s order."""
        if not need:
            return False
        if need not in applied:
            return True
        return floor in applied and applied.index(need) < applied.index(floor)

    if args.resource_type == ARM:
        need = schema.get("needs")
        if refused(need):
            arm = short(props.get("stack")) or stack_name(args)
            report(
                f"Deploy to {props.get('color') or arm} denied: arm stack {arm} "
                f"{refusal(need, f'`pulumi up -s {arm}`')}"
            )
        return
    weights = props.get("weights") or {}
    for color, need in sorted((schema.get("arms") or {}).items()):
        if (weights.get(color) or 0) > 0 and refused(need):
            report(
                f"{step_verb(props, color)} to {color} on stack {stack_name(args)} denied: arm "
                f"{color} {refusal(need, 'move traffic again')}"
            )


# --- the revisions a migration applies -----------------------------------------------------------


def _pending(props: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The revisions this update applies, in order, each with its `phases` (as the input's pending
    entry and its revisions entry say) and `contracts`: those the input lists as pending, and,
    given what is `applied`, any the order puts between the last applied revision and the target,
    so that an input leaving one out hides nothing (it comes without `sql`)."""
    revisions = {
        r["id"]: r for r in props.get("revisions") or [] if isinstance(r, Mapping) and r.get("id")
    }
    order = list(revisions)
    given = {
        p["revision"]: p
        for p in props.get("pending") or []
        if isinstance(p, Mapping) and p.get("revision")
    }
    between: list[str] = []
    target = props.get("target")
    if target in revisions and isinstance(props.get("applied"), list):
        done = [order.index(a) for a in props.get("applied") or [] if a in revisions]
        between = order[max(done, default=-1) + 1 : order.index(target) + 1]
    items = []
    for rev in [*given, *(r for r in between if r not in given)]:
        entry, known = given.get(rev, {}), revisions.get(rev, {})
        items.append(
            {
                "revision": rev,
                "phases": {entry.get("phase"), known.get("phase")} - {None},
                "contracts": known.get("contracts") or entry.get("contracts"),
                "sql": entry.get("sql"),
                "findings": entry.get("findings") or [],
            }
        )
    rank = {rev: i for i, rev in enumerate(order)}
    return sorted(items, key=lambda item: rank.get(item["revision"], len(order)))


# --- 2. a contract breaks no release that runs or may come back ----------------------------------


def _left(record: Mapping[str, Any]) -> list[str]:
    """The colours a traffic change took traffic from."""
    before = (record.get("from") or {}).get("weights") or {}
    after = (record.get("to") or {}).get("weights") or {}
    return sorted(c for c, w in before.items() if (w or 0) > (after.get(c) or 0))


def _needed(record: Mapping[str, Any], color: str, needs_now: Mapping[str, Any]) -> Any:
    """The revision `color`'s release needed when the change took traffic from it: what the record
    says (schema.from / schema.to), else what its arm stack needs now."""
    schema = record.get("schema") or {}
    for side in ("from", "to"):
        said = schema.get(side) if isinstance(schema, Mapping) else None
        if isinstance(said, Mapping) and said.get("color") == color and "needs" in said:
            return said.get("needs")
    return needs_now.get(color)


def _time(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _minutes(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return float(value) if ok else float(WINDOW_MINUTES)


def contract_safe(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type not in MIGRATIONS:
        return
    if not config_of(args, no_config(settings.CONTRACT_SAFE), report):
        return
    contracts = [i for i in _pending(inputs(args, MIGRATION_INPUTS)) if "contract" in i["phases"]]
    props = migration_observed(args, report) if contracts else None
    if props is None:
        return
    order = [r.get("id") for r in props.get("revisions") or [] if isinstance(r, Mapping)]
    data, live = stack_name(args), short(props.get("liveStack")) or "live"
    stacks, needs_now = props.get("armStacks") or {}, props["armNeeds"]
    unnamed = [k for k in ("armStacks", "liveStack") if not props.get(k)]
    if unnamed:
        for item in contracts:
            report(
                f"Contract revision {item['revision']} on data stack {data} denied: the "
                f"migration does not name {' or '.join(unnamed)}, so the gate cannot see which "
                "releases the arms run, nor which one a rollback would bring back. Deploy the data "
                "stack with this repository's program, which names them."
            )
        return
    for item in contracts:
        rev, removes = item["revision"], item["contracts"]
        denied = f"Contract revision {rev} on data stack {data} denied"
        if removes not in order:
            report(
                f"{denied}: it names no revision it contracts (contracts = {removes!r}; the "
                f"revisions: {_listed(order)}), so the gate cannot tell which releases it breaks. "
                "Name in its `contracts` the expand whose old shape it removes."
            )
            continue

        def old(need: Any, removes: str = removes) -> bool:
            """Needs the shape `removes` ends (a revision before it, or one not in the order)."""
            return bool(need) and (need not in order or order.index(need) < order.index(removes))

        def needing(need: str, removes: str = removes, rev: str = rev) -> str:
            if need not in order:
                return (
                    f"needs schema revision {need}, which the data stack does not have (its "
                    f"revisions: {_listed(order)}), so it may need the shape {rev} removes"
                )
            return f"needs schema revision {need}, before {removes}, whose old shape {rev} removes"

        new = f"with bluegreen:schemaRevision {removes} or later"
        for color, need in sorted(needs_now.items()):
            if not old(need):
                continue
            arm = short(stacks.get(color)) or color
            if (props["liveWeights"].get(color) or 0) > 0:
                fix = (
                    f"Arm {color} takes traffic: deploy the new release ({new}) to the other "
                    f"arm, move traffic to it, then deploy it to {color} too (`pulumi up -s {arm}`)"
                )
            else:
                fix = f"Deploy the new release to {color} first ({new}; `pulumi up -s {arm}`)"
            report(f"{denied}: arm stack {arm} {needing(need)}. {fix}.")
        window = _minutes(props.get("rollbackWindowMinutes"))
        for record in reversed(props["evidence"]):
            if not isinstance(record, Mapping):
                continue
            gone = [(c, _needed(record, c, needs_now)) for c in _left(record)]
            gone = [(c, need) for c, need in gone if old(need)]
            if not gone:
                continue
            color, need = gone[0]
            arm = short(stacks.get(color)) or color
            at = _time(record.get("time"))
            if at is None:
                report(
                    f"{denied}: live stack {live} took traffic from {color}, whose release "
                    f"{needing(need)}, at a time the gate cannot read ({record.get('time')!r}), "
                    "so a rollback to it may still be possible. Move traffic once more (its "
                    "record gets a time), then wait out the rollback window."
                )
            elif now() < (end := at + timedelta(minutes=window)):
                report(
                    f"{denied}: a rollback to the release {color} served until "
                    f"{at:%Y-%m-%d %H:%M} UTC is possible until {end:%Y-%m-%d %H:%M} UTC "
                    f"(live stack {live} keeps it so for {window:g} minutes, "
                    f"bluegreen:rollbackWindowMinutes), and that release {needing(need)}. "
                    f"Wait until {end:%Y-%m-%d %H:%M} UTC; or, if it will not come back, deploy "
                    f"the new release to {color} ({new}; `pulumi up -s {arm}`) and shorten "
                    f"bluegreen:rollbackWindowMinutes on the live stack (`pulumi up -s {live}`)."
                )
            break  # the newest change away from such a release ends the window last


# --- 3. an expand breaks nothing and locks nothing for long --------------------------------------


def expand_safe(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type not in MIGRATIONS:
        return
    if not config_of(args, no_config(settings.EXPAND_SAFE), report):
        return
    data = stack_name(args)
    for item in _pending(inputs(args, MIGRATION_INPUTS)):
        if "expand" not in item["phases"]:
            continue
        denied = f"Expand revision {item['revision']} on data stack {data} denied"
        sql = item["sql"]
        if not isinstance(sql, str):
            report(
                f"{denied}: the gate was given no SQL for it, so it cannot tell it is safe. The "
                "data stack's program gives every pending revision's SQL in the migration's "
                "`pending` input: deploy the data stack from this repository's program."
            )
            continue
        found = [
            (str(f.get("statement") or ""), str(f.get("rule") or ""), str(f.get("message") or ""))
            for f in item["findings"]
            if isinstance(f, Mapping)
        ]
        given = list(found)
        for f in ddl_checks.check(sql):
            if not any(
                ddl_checks.SQUAWK.get(rule, rule) == f.rule and ddl_checks.same(s, f.statement)
                for s, rule, _ in given
            ):
                found.append((f.statement, f.rule, f.message))
        for statement, rule, message in found:
            shown = statement if len(statement) <= 200 else statement[:199] + "…"
            why = f"{rule}: {message.rstrip('.')}" if message else rule
            fix = ddl_checks.fix(rule)
            report(
                f"{denied}: it holds a destructive or locking statement: `{shown}` ({why}). An "
                f"expand runs while the release before it still serves: {fix}."
            )


POLICIES = [
    ResourceValidationPolicy(
        name=settings.SCHEMA_APPLIED,
        description="An arm is deployed, and traffic moves to it, only once the data stack has "
        "applied the schema revision its release needs.",
        validate=schema_applied,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name=settings.CONTRACT_SAFE,
        description="A contract revision waits until no arm needs the shape it removes and no "
        "rollback to a release that does is still possible (bluegreen:rollbackWindowMinutes).",
        validate=contract_safe,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name=settings.EXPAND_SAFE,
        description="An expand revision holds no statement that breaks the release still running "
        "or locks a table for long (drop, rename, type change, NOT NULL, CREATE INDEX without "
        "CONCURRENTLY).",
        validate=expand_safe,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
]
