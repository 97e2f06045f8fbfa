"""The data guards (policy/bluegreen_policy/data_rules.py), pass and refusal, called directly with
argument objects built here; what the stacks say now is served by a stand-in for `state.outputs`.
No process runs: the SQL is the kind `alembic upgrade a:b --sql` renders, written out here."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bluegreen_policy import data_rules, ddl_checks, rules, settings, state
from pulumi_policy import PolicyResourceOptions, ResourceValidationArgs
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from tests.support.policy_cases import as_engine_sends

ARM, EDGE = "bluegreen:index:Arm", "bluegreen:index:Edge"
MIGRATION = "pulumi-python:dynamic/data:Migration"
"""The type platforms/migration.py's Migration gets (module "data")."""
BLUE, GREEN = "organization/bluegreen/blue", "organization/bluegreen/green"
LIVE, DATA = "organization/bluegreen/live", "organization/bluegreen/data"
REVISIONS = [
    {"id": "0001_items", "phase": "expand", "contracts": None},
    {"id": "0002_items_name", "phase": "expand", "contracts": None},
    {"id": "0003_drop_title", "phase": "contract", "contracts": "0002_items_name"},
]
EXPAND_SQL = """SET lock_timeout = '5s';
BEGIN;
-- Running upgrade 0001_items -> 0002_items_name
ALTER TABLE items ADD COLUMN IF NOT EXISTS name TEXT;
CREATE OR REPLACE FUNCTION items_title_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.name := coalesce(NEW.name, NEW.title);
    RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER items_title_name BEFORE INSERT OR UPDATE ON items FOR EACH ROW
EXECUTE FUNCTION items_title_name();
COMMIT;
UPDATE items SET name = title WHERE id >= 1 AND id < 1 + 5000 AND name IS NULL;
"""
CONTRACT_SQL = """BEGIN;
-- Running upgrade 0002_items_name -> 0003_drop_title
DROP TRIGGER items_title_name ON items;
ALTER TABLE items ALTER COLUMN name SET NOT NULL;
ALTER TABLE items DROP COLUMN title;
COMMIT;
"""
FLIPPED = "2026-05-01T12:00:00Z"
"""When the live stack's last traffic change took traffic from blue to green."""


def judge(
    policy,
    resource_type: str,
    props: dict,
    world: dict | None = None,
    config: dict | None = None,
    stack: str = "data",
) -> list[str]:
    """Call `policy` as the engine would on a resource of `stack`; `world` is every stack's last
    outputs (a stack not in it was never deployed). Reads beyond `world` fail the test."""

    def outputs(name: str):
        if world is None:
            raise AssertionError(f"the policy read stack {name}, which it has no reason to")
        return world.get(name)

    reports: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(state, "outputs", outputs)
        args = ResourceValidationArgs(
            resource_type,
            unknown_checking_proxy(as_engine_sends(props)),
            f"urn:pulumi:{stack}::bluegreen::{resource_type}::x",
            "x",
            PolicyResourceOptions(False, [], None, [], None, []),
            None,
            as_engine_sends(config or {}),
        )
        policy(args, lambda message, urn=None: reports.append(message))
    return reports


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """Twenty minutes after the flip: inside the default 30-minute window."""
    monkeypatch.setattr(data_rules, "now", lambda: datetime(2026, 5, 1, 12, 20, tzinfo=UTC))


# --- bluegreen-schema-applied --------------------------------------------------------------------


def arm(needs: str | None, applied: list[str]) -> dict:
    props = {"stack": BLUE, "liveStack": LIVE, "color": "blue", "version": "v2", "replicas": 1}
    if needs is not None:
        props["schema"] = {"needs": needs, "applied": applied, "dataStack": "data"}
    return props


def test_an_arm_whose_revision_is_applied_passes():
    props = arm("0002_items_name", ["0001_items", "0002_items_name"])
    assert judge(data_rules.schema_applied, ARM, props, stack="blue") == []


def test_a_stateless_arm_is_not_judged():
    assert judge(data_rules.schema_applied, ARM, arm(None, []), stack="blue") == []


def test_an_arm_whose_revision_is_not_applied_is_refused_naming_the_fix():
    [message] = judge(
        data_rules.schema_applied, ARM, arm("0002_items_name", ["0001_items"]), stack="blue"
    )
    assert message == (
        "Deploy to blue denied: arm stack blue needs schema revision 0002_items_name, which is "
        "not applied on data stack data (applied: 0001_items). Apply it first: set "
        "bluegreen:schemaRevision 0002_items_name on the data stack and `pulumi up -s data`, "
        "then `pulumi up -s blue`."
    )
    [message] = judge(data_rules.schema_applied, ARM, arm("0001_items", []), stack="blue")
    assert "(applied: none)" in message


def edge(weights: dict, arms: dict, applied: list[str], canary: int | None = None) -> dict:
    return {
        "stack": LIVE,
        "activeColor": max(weights, key=weights.get),
        "weights": weights,
        "canaryWeight": canary,
        "schema": {"arms": arms, "applied": applied, "dataStack": DATA},
    }


def test_traffic_to_an_arm_whose_revision_is_not_applied_is_refused():
    props = edge(
        {"blue": 0, "green": 100},
        {"blue": "0001_items", "green": "0002_items_name"},
        ["0001_items"],
    )
    [message] = judge(data_rules.schema_applied, EDGE, props, stack="live")
    assert message == (
        "Flip to green on stack live denied: arm green needs schema revision 0002_items_name, "
        "which is not applied on data stack data (applied: 0001_items). Apply it first: set "
        "bluegreen:schemaRevision 0002_items_name on the data stack and `pulumi up -s data`, "
        "then move traffic again."
    )
    canary = edge(
        {"blue": 95, "green": 5}, {"blue": "0001_items", "green": "0003_x"}, ["0001_items"], 5
    )
    [message] = judge(data_rules.schema_applied, EDGE, canary, stack="live")
    assert message.startswith(
        "Canary step to green on stack live denied: arm green needs schema revision 0003_x"
    )


def test_traffic_to_arms_whose_revisions_are_applied_or_that_need_none_passes():
    applied = ["0001_items", "0002_items_name"]
    both = edge(
        {"blue": 0, "green": 100}, {"blue": "0001_items", "green": "0002_items_name"}, applied
    )
    assert judge(data_rules.schema_applied, EDGE, both, stack="live") == []
    # An arm without traffic may need what is not applied yet: nothing is sent to it.
    idle = edge({"blue": 100, "green": 0}, {"blue": None, "green": "0009_later"}, ["0001_items"])
    assert judge(data_rules.schema_applied, EDGE, idle, stack="live") == []
    no_schema = {k: v for k, v in idle.items() if k != "schema"}
    assert judge(data_rules.schema_applied, EDGE, no_schema, stack="live") == []


CONTRACTED = ["0001_items", "0002_items_name", "0003_drop_title"]
FLOOR = {"floor": "0002_items_name", "floorContract": "0003_drop_title"}
"""What the data stack says once 0003_drop_title (contracts 0002_items_name) is applied."""


def test_an_arm_needing_a_shape_an_applied_contract_removed_is_refused():
    # 0001_items is still in `applied`, but its shape (`title`) is gone.
    props = arm("0001_items", CONTRACTED)
    props["schema"] |= FLOOR
    [message] = judge(data_rules.schema_applied, ARM, props, stack="blue")
    assert message == (
        "Deploy to blue denied: arm stack blue needs schema revision 0001_items, whose shape the "
        "applied contract 0003_drop_title removed: deploy a release that needs 0002_items_name "
        "or later."
    )
    for need in ("0002_items_name", "0003_drop_title"):
        props = arm(need, CONTRACTED)
        props["schema"] |= FLOOR
        assert judge(data_rules.schema_applied, ARM, props, stack="blue") == []
    # Before any contract (no floor), or from a program that names no contract, 0001 passes or
    # is refused in general words.
    assert judge(data_rules.schema_applied, ARM, arm("0001_items", CONTRACTED), stack="blue") == []
    props = arm("0001_items", CONTRACTED)
    props["schema"]["floor"] = "0002_items_name"
    [message] = judge(data_rules.schema_applied, ARM, props, stack="blue")
    assert "whose shape an applied contract removed" in message


def test_traffic_to_an_arm_below_the_floor_is_refused():
    props = edge(
        {"blue": 100, "green": 0}, {"blue": "0001_items", "green": "0002_items_name"}, CONTRACTED
    )
    props["schema"] |= FLOOR
    [message] = judge(data_rules.schema_applied, EDGE, props, stack="live")
    assert message == (
        "Flip to blue on stack live denied: arm blue needs schema revision 0001_items, whose "
        "shape the applied contract 0003_drop_title removed: deploy a release that needs "
        "0002_items_name or later."
    )
    # The arm below the floor takes no traffic: nothing is sent to it.
    idle = edge(
        {"blue": 0, "green": 100}, {"blue": "0001_items", "green": "0002_items_name"}, CONTRACTED
    )
    idle["schema"] |= FLOOR
    assert judge(data_rules.schema_applied, EDGE, idle, stack="live") == []


# --- bluegreen-contract-safe ---------------------------------------------------------------------


def migration(target: str, applied: list[str], pending: list[dict]) -> dict:
    return {
        "target": target,
        "applied": applied,
        "revisions": REVISIONS,
        "pending": pending,
        "armStacks": {"blue": BLUE, "green": GREEN},
        "liveStack": LIVE,
    }


CONTRACT = migration(
    "0003_drop_title",
    ["0001_items", "0002_items_name"],
    [{"revision": "0003_drop_title", "phase": "contract", "sql": CONTRACT_SQL, "findings": []}],
)


def flip(schema: dict | None = None, time: str = FLIPPED) -> dict:
    """The live stack's evidence record of blue -> green."""
    record = {
        "time": time,
        "from": {"activeColor": "blue", "weights": {"blue": 100, "green": 0}},
        "to": {"activeColor": "green", "weights": {"blue": 0, "green": 100}},
    }
    return {**record, "schema": schema} if schema else record


RECORDED = {
    "from": {"color": "blue", "needs": "0001_items"},
    "to": {"color": "green", "needs": "0002_items_name"},
    "applied": "0002_items_name",
}


def world(blue: str | None, green: str | None, evidence: list, **live) -> dict:
    return {
        BLUE: {"schemaRevision": blue} if blue else {"version": "v1"},
        GREEN: {"schemaRevision": green} if green else {"version": "v1"},
        LIVE: {"activeColor": "green", "weights": {"blue": 0, "green": 100}, **live}
        | {"evidence": evidence},
    }


def test_a_contract_with_every_arm_on_the_new_revision_and_the_window_closed_passes(monkeypatch):
    monkeypatch.setattr(data_rules, "now", lambda: datetime(2026, 5, 1, 12, 31, tzinfo=UTC))
    stacks = world("0002_items_name", "0002_items_name", [flip(RECORDED)])
    assert judge(data_rules.contract_safe, MIGRATION, CONTRACT, stacks) == []
    # Nothing flipped yet, or only stateless arms: nothing to roll back to.
    assert judge(data_rules.contract_safe, MIGRATION, CONTRACT, world(None, None, [])) == []


def test_a_contract_while_an_arm_needs_the_old_shape_is_refused_naming_the_arm():
    stacks = world("0001_items", "0002_items_name", [])
    [message] = judge(data_rules.contract_safe, MIGRATION, CONTRACT, stacks)
    assert message == (
        "Contract revision 0003_drop_title on data stack data denied: arm stack blue needs "
        "schema revision 0001_items, before 0002_items_name, whose old shape 0003_drop_title "
        "removes. Deploy the new release to blue first (with bluegreen:schemaRevision "
        "0002_items_name or later; `pulumi up -s blue`)."
    )


def test_a_contract_while_the_live_arm_needs_the_old_shape_says_to_flip_first():
    stacks = world("0002_items_name", "0001_items", [])
    [message] = judge(data_rules.contract_safe, MIGRATION, CONTRACT, stacks)
    assert "arm stack green needs schema revision 0001_items" in message
    assert message.endswith(
        "Arm green takes traffic: deploy the new release (with bluegreen:schemaRevision "
        "0002_items_name or later) to the other arm, move traffic to it, then deploy it to green "
        "too (`pulumi up -s green`)."
    )


def test_a_contract_in_the_rollback_window_is_refused_with_the_window_end():
    # Both arms run the new release, but traffic left a release that needed 0001_items 20
    # minutes ago: a rollback to it is still expected.
    stacks = world("0002_items_name", "0002_items_name", [flip(RECORDED)])
    [message] = judge(data_rules.contract_safe, MIGRATION, CONTRACT, stacks)
    assert message == (
        "Contract revision 0003_drop_title on data stack data denied: a rollback to the release "
        "blue served until 2026-05-01 12:00 UTC is possible until 2026-05-01 12:30 UTC (live "
        "stack live keeps it so for 30 minutes, bluegreen:rollbackWindowMinutes), and that "
        "release needs schema revision 0001_items, before 0002_items_name, whose old shape "
        "0003_drop_title removes. Wait until 2026-05-01 12:30 UTC; or, if it will not come back, "
        "deploy the new release to blue (with bluegreen:schemaRevision 0002_items_name or later; "
        "`pulumi up -s blue`) and shorten bluegreen:rollbackWindowMinutes on the live stack "
        "(`pulumi up -s live`)."
    )


def test_the_window_is_the_live_stacks_own():
    short = world("0002_items_name", "0002_items_name", [flip(RECORDED)], rollbackWindowMinutes=15)
    assert judge(data_rules.contract_safe, MIGRATION, CONTRACT, short) == []
    long = world("0002_items_name", "0002_items_name", [flip(RECORDED)], rollbackWindowMinutes=60)
    [message] = judge(data_rules.contract_safe, MIGRATION, CONTRACT, long)
    assert "is possible until 2026-05-01 13:00 UTC" in message


def test_the_record_the_edge_writes_opens_the_window():
    # The record as components/evidence.py writes it (bluegreen/flip_evidence.py), not as written
    # here: both arms need the new revision now, and only the record says blue's old one.
    from bluegreen import flip_evidence

    record = flip()
    needs = {"blue": "0001_items", "green": "0002_items_name"}
    schema = flip_evidence.schema_record(record["from"], record["to"], needs, ["0001_items"])
    stacks = world("0002_items_name", "0002_items_name", [flip(schema)])
    [message] = judge(data_rules.contract_safe, MIGRATION, CONTRACT, stacks)
    assert "a rollback to the release blue served until 2026-05-01 12:00 UTC" in message


def test_a_record_without_schema_is_judged_by_what_the_arm_needs_now():
    stale = world("0001_items", "0002_items_name", [flip()])
    messages = judge(data_rules.contract_safe, MIGRATION, CONTRACT, stale)
    assert len(messages) == 2
    assert "arm stack blue needs schema revision 0001_items" in messages[0]
    assert "is possible until 2026-05-01 12:30 UTC" in messages[1]
    redeployed = world("0002_items_name", "0002_items_name", [flip()])
    assert judge(data_rules.contract_safe, MIGRATION, CONTRACT, redeployed) == []


def test_only_a_change_away_from_an_old_release_opens_the_window():
    # The last change moved traffic back from green (new) to blue (new): the change away from
    # blue's old release, an hour before, is what counts, and it is outside the window.
    back = {
        "time": "2026-05-01T12:10:00Z",
        "from": {"activeColor": "green", "weights": {"blue": 0, "green": 100}},
        "to": {"activeColor": "blue", "weights": {"blue": 100, "green": 0}},
        "schema": {"from": {"color": "green", "needs": "0002_items_name"}},
    }
    stacks = world(
        "0002_items_name", "0002_items_name", [flip(RECORDED, "2026-05-01T11:20:00Z"), back]
    )
    assert judge(data_rules.contract_safe, MIGRATION, CONTRACT, stacks) == []


def test_a_record_whose_time_cannot_be_read_refuses():
    stacks = world("0002_items_name", "0002_items_name", [flip(RECORDED, "yesterday")])
    [message] = judge(data_rules.contract_safe, MIGRATION, CONTRACT, stacks)
    assert "at a time the gate cannot read ('yesterday')" in message


def test_an_unknown_revision_counts_as_old_and_a_contract_must_name_what_it_contracts():
    stacks = world("0099_elsewhere", None, [])
    [message] = judge(data_rules.contract_safe, MIGRATION, CONTRACT, stacks)
    assert "needs schema revision 0099_elsewhere, which the data stack does not have" in message
    unnamed = {
        **CONTRACT,
        "revisions": [*REVISIONS[:2], {"id": "0003_drop_title", "phase": "contract"}],
    }
    [message] = judge(data_rules.contract_safe, MIGRATION, unnamed, world(None, None, []))
    assert "it names no revision it contracts (contracts = None" in message


def test_a_contract_the_pending_input_leaves_out_is_still_judged():
    hidden = {**CONTRACT, "pending": []}
    [message] = judge(data_rules.contract_safe, MIGRATION, hidden, world("0001_items", None, []))
    assert message.startswith("Contract revision 0003_drop_title on data stack data denied")
    # Without `applied`, nothing is derived: the revisions up to the target are not all pending.
    unsaid = {k: v for k, v in hidden.items() if k != "applied"}
    assert judge(data_rules.contract_safe, MIGRATION, unsaid, world("0001_items", None, [])) == []


def test_a_contract_on_a_migration_that_names_no_stacks_is_refused():
    bare = {k: v for k, v in CONTRACT.items() if k not in ("armStacks", "liveStack")}
    [message] = judge(data_rules.contract_safe, MIGRATION, bare, world(None, None, []))
    assert message.startswith(
        "Contract revision 0003_drop_title on data stack data denied: the migration does not "
        "name armStacks or liveStack"
    )


def test_no_contract_reads_no_stack_and_an_unreadable_one_refuses(monkeypatch):
    expand = migration(
        "0002_items_name",
        ["0001_items"],
        [{"revision": "0002_items_name", "phase": "expand", "sql": EXPAND_SQL, "findings": []}],
    )
    assert judge(data_rules.contract_safe, MIGRATION, expand) == []  # world None: no read

    def unreadable(stack):
        raise state.StateReadError(f"reading stack {stack} failed: backend unreachable")

    reports: list[str] = []
    monkeypatch.setattr(state, "outputs", unreadable)
    args = ResourceValidationArgs(
        MIGRATION,
        unknown_checking_proxy(as_engine_sends(CONTRACT)),
        f"urn:pulumi:data::bluegreen::{MIGRATION}::migration",
        "migration",
        PolicyResourceOptions(False, [], None, [], None, []),
        None,
        {},
    )
    data_rules.contract_safe(args, lambda message, urn=None: reports.append(message))
    [message] = reports
    assert message.startswith("migration denied: the gate cannot read what the arms and the live")
    assert "backend unreachable" in message


# --- bluegreen-expand-safe -----------------------------------------------------------------------


def expand(sql: str, findings: list[dict]) -> dict:
    return migration(
        "0004_x",
        ["0001_items", "0002_items_name", "0003_drop_title"],
        [{"revision": "0004_x", "phase": "expand", "sql": sql, "findings": findings}],
    ) | {"revisions": [*REVISIONS, {"id": "0004_x", "phase": "expand", "contracts": None}]}


def test_a_clean_expand_passes_and_a_contract_may_drop():
    clean = migration(
        "0002_items_name",
        ["0001_items"],
        [{"revision": "0002_items_name", "phase": "expand", "sql": EXPAND_SQL, "findings": []}],
    )
    assert judge(data_rules.expand_safe, MIGRATION, clean) == []
    assert judge(data_rules.expand_safe, MIGRATION, CONTRACT) == []


def test_an_expand_with_a_finding_is_refused_naming_the_statement_and_rule():
    finding = {
        "statement": "ALTER TABLE items DROP COLUMN title",
        "rule": "ban-drop-column",
        "message": "Dropping a column may break existing clients.",
    }
    sql = "BEGIN;\nALTER TABLE items DROP COLUMN title;\nCOMMIT;\n"
    [message] = judge(data_rules.expand_safe, MIGRATION, expand(sql, [finding]))
    assert message == (
        "Expand revision 0004_x on data stack data denied: it holds a destructive or locking "
        "statement: `ALTER TABLE items DROP COLUMN title` (ban-drop-column: Dropping a column "
        "may break existing clients). An expand runs while the release before it still serves: "
        "move it into a contract revision."
    )


def test_an_expand_claiming_no_findings_whose_sql_drops_a_column_is_refused():
    sql = "BEGIN;\n-- Running upgrade\nALTER TABLE items\n    DROP COLUMN title;\nCOMMIT;\n"
    [message] = judge(data_rules.expand_safe, MIGRATION, expand(sql, []))
    assert message == (
        "Expand revision 0004_x on data stack data denied: it holds a destructive or locking "
        "statement: `ALTER TABLE items DROP COLUMN title` (drop-column: the release still "
        "running reads it). An expand runs while the release before it still serves: move it "
        "into a contract revision."
    )


def test_an_expand_without_its_sql_is_refused():
    omitted = {**expand("", []), "pending": []}
    [message] = judge(data_rules.expand_safe, MIGRATION, omitted)
    assert message.startswith(
        "Expand revision 0004_x on data stack data denied: the gate was given no SQL for it"
    )


@pytest.mark.parametrize(
    ("statement", "rule"),
    [
        ("ALTER TABLE items DROP title", "drop-column"),
        ("ALTER TABLE items ALTER COLUMN a DROP DEFAULT, DROP COLUMN b", "drop-column"),
        ("ALTER TABLE items RENAME COLUMN title TO name", "rename-column"),
        ("ALTER TABLE items RENAME TO things", "rename-table"),
        ("ALTER TABLE public.items ALTER COLUMN id TYPE numeric(12, 2)", "column-type"),
        ("ALTER TABLE items ALTER COLUMN id SET DATA TYPE bigint", "column-type"),
        ("ALTER TABLE items ALTER COLUMN name SET NOT NULL", "not-null"),
        ("ALTER TABLE items ADD COLUMN n text NOT NULL", "not-null"),
        ("CREATE INDEX items_name ON items (name)", "index-not-concurrent"),
        ("CREATE UNIQUE INDEX items_name ON items USING btree (name)", "index-not-concurrent"),
        ('DROP TABLE "items"', "drop-table"),
        ("ALTER TABLE items ADD COLUMN n text NOT NULL DEFAULT 'a'", None),
        ("ALTER TABLE items ADD COLUMN IF NOT EXISTS name TEXT", None),
        ("ALTER TABLE items DROP CONSTRAINT items_check", None),
        ("ALTER TABLE items ADD CONSTRAINT c CHECK (n IS NOT NULL) NOT VALID", None),
        ("CREATE INDEX CONCURRENTLY items_name ON items (name)", None),
        ("DROP TRIGGER items_title_name ON items", None),
        ("INSERT INTO notes VALUES ('x; DROP TABLE items')", None),
    ],
)
def test_the_packs_own_reading_of_the_sql(statement, rule):
    found = ddl_checks.check(f"BEGIN;\n{statement};\nCOMMIT;\n")
    assert [f.rule for f in found] == ([rule] if rule else [])


def test_what_a_revision_does_to_a_table_it_creates_is_no_finding():
    sql = (
        "CREATE TABLE things (id bigint, title text);\n"
        "CREATE INDEX things_title ON things (title);\n"
        "ALTER TABLE things ALTER COLUMN title SET NOT NULL;\n"
    )
    assert ddl_checks.check(sql) == []


def test_a_function_body_is_one_statement():
    [*split] = ddl_checks.statements(EXPAND_SQL)
    assert len(split) == 7
    assert split[3].startswith("CREATE OR REPLACE FUNCTION") and split[3].endswith("END $$")


def test_a_dsn_a_preview_cannot_know_yet_leaves_the_guards_running():
    props = {**expand("ALTER TABLE items DROP COLUMN title;", []), "dsn": UNKNOWN_STRING_VALUE}
    assert len(judge(data_rules.expand_safe, MIGRATION, props)) == 1
    stacks = world("0001_items", None, [])
    assert (
        len(judge(data_rules.contract_safe, MIGRATION, {**CONTRACT, "dsn": props["dsn"]}, stacks))
        == 1
    )


def test_a_finding_the_program_gave_is_not_repeated():
    given = {"statement": "ALTER TABLE items DROP COLUMN title;", "rule": "drop-column"}
    sql = "ALTER TABLE items DROP COLUMN title;"
    assert len(judge(data_rules.expand_safe, MIGRATION, expand(sql, [given]))) == 1


# --- the pack ------------------------------------------------------------------------------------


def test_a_migration_under_either_module_name_is_judged():
    sql = "ALTER TABLE items DROP COLUMN title;"
    for token in data_rules.MIGRATIONS:
        assert len(judge(data_rules.expand_safe, token, expand(sql, []))) == 1
    assert judge(data_rules.expand_safe, "pulumi-python:dynamic/data:Other", expand(sql, [])) == []


def test_the_pack_serves_the_data_guards_and_they_take_no_settings():
    names = [p.name for p in rules.POLICIES]
    assert names[-3:] == [settings.SCHEMA_APPLIED, settings.CONTRACT_SAFE, settings.EXPAND_SAFE]
    [message] = judge(data_rules.expand_safe, MIGRATION, expand("", []), config={"strict": True})
    assert "bluegreen-expand-safe.strict is not a known setting" in message
    config = {"enforcementLevel": "mandatory"}
    assert judge(data_rules.expand_safe, MIGRATION, expand("", []), config=config) == []
