"""What the live stack says of the schema, and what `bluegreen status` makes of it: the live key
bluegreen:rollbackWindowMinutes, the outputs the edge exports for it (`rollbackWindowMinutes`,
`dataStack`), the data stack's `floor` as the arm and the edge pass it to the gate, and the status
lines and `status --json`'s `schema` from stacks' outputs given here (no process runs)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pulumi
import pytest

from bluegreen import schema
from bluegreen.config import ConfigError
from bluegreen.live_stack import LiveOutputs
from components.data import floor
from cutover import commands
from cutover import status as status_module
from tests.support.data_mocks import ARM, ARM_OUTPUTS, DATA_OUTPUTS, DataMocks, build_arm_with_data
from tests.support.mocks import build_edge, install, stack

DATA = "organization/bluegreen/data"
CONTRACTED = {
    "current": "0003_drop_title",
    "applied": ["0001_items", "0002_items_name", "0003_drop_title"],
    "phases": {"0001_items": "expand", "0002_items_name": "expand", "0003_drop_title": "contract"},
    "floor": "0002_items_name",
}
"""The data stack's `schema` output once the contract 0003_drop_title is applied."""


# --- bluegreen:rollbackWindowMinutes -------------------------------------------------------------


def problems(name: str, **values) -> str:
    with pytest.raises(ConfigError) as err:
        stack(name, **values)
    return str(err.value)


def test_the_rollback_window_is_the_live_stacks_own_key():
    edge = {"role": "edge", "activeColor": "blue"}
    assert stack("live", **edge).settings.rollback_window_minutes == 30
    assert stack("live", **edge, rollbackWindowMinutes="0").settings.rollback_window_minutes == 0
    window = stack("live", **edge, rollbackWindowMinutes="10080").settings
    assert window.rollback_window_minutes == 10080
    for bad in ("10081", "-1", "half an hour", "1.5"):
        assert problems("live", **edge, rollbackWindowMinutes=bad) == (
            "bluegreen:rollbackWindowMinutes must be an integer from 0 to 10080 (minutes; a "
            f'week), got "{bad}"'
        )
    assert (
        "bluegreen:rollbackWindowMinutes belongs only in the edge stack (Pulumi.live.yaml), but "
        'arm stack "green" sets it to "60": remove it here'
    ) in problems("green", **ARM, rollbackWindowMinutes="60")
    data = {"role": "data", "schemaRevision": "0001_items", "databasePassword": "x"}
    assert (
        'bluegreen:rollbackWindowMinutes belongs only in the edge stack, but data stack "data"'
        in (problems("data", **data, rollbackWindowMinutes="60"))
    )


# --- what the program passes and exports ---------------------------------------------------------


def test_the_floor_is_what_the_newest_applied_contract_contracts():
    revisions = schema.revisions()
    assert floor(["0001_items", "0002_items_name"], revisions) is None
    assert floor(CONTRACTED["applied"], revisions) == "0002_items_name"
    assert floor([], revisions) is None


@pytest.mark.parametrize("with_data", [True, False])
def test_the_edge_exports_its_window_and_data_stack_and_records_the_schema(with_data):
    data = {DATA: {**DATA_OUTPUTS, "schema": CONTRACTED}} if with_data else {}
    mocks = install(DataMocks({**ARM_OUTPUTS, **data}))

    @pulumi.runtime.test
    def run():
        edge = build_edge(stack("live", role="edge", activeColor="green"))

        def check(args):
            window, evidence = args
            assert window == 30
            record = mocks.created["live-evidence"].inputs
            if not with_data:
                assert "dataStack" not in edge.exports and "schema" not in record
                return
            assert edge.exports["dataStack"] == "data"
            assert mocks.created["live"].inputs["schema"] == {
                "arms": {"green": "0002_items_name"},
                "applied": CONTRACTED["applied"],
                "dataStack": DATA,
                "floor": "0002_items_name",
                "floorContract": "0003_drop_title",
            }
            # The evidence resource gets what its record's `schema` is made of.
            assert record["schema"] == {
                "arms": {"green": "0002_items_name"},
                "applied": CONTRACTED["applied"],
            }

        exports = edge.exports
        return pulumi.Output.all(exports["rollbackWindowMinutes"], exports["evidence"]).apply(check)

    run()


def test_an_arm_passes_the_floor_to_the_gate():
    from components import data_from_stack

    mocks = install(DataMocks({DATA: {**DATA_OUTPUTS, "schema": CONTRACTED}}))
    s = stack("green", **ARM, schemaRevision="0002_items_name")

    @pulumi.runtime.test
    def run():
        arm = build_arm_with_data(s, data_from_stack)

        def check(_):
            assert mocks.created["green"].inputs["schema"] == {
                "needs": "0002_items_name",
                "applied": CONTRACTED["applied"],
                "dataStack": DATA,
                "floor": "0002_items_name",
                "floorContract": "0003_drop_title",
            }

        return pulumi.Output.all(arm.urn, arm.endpoint).apply(check)

    run()


# --- bluegreen status ----------------------------------------------------------------------------


class Stacks:
    """`Workspace.outputs` and `outputs_of` over given outputs, recording each read."""

    def __init__(self, found: dict[str, dict]) -> None:
        self.found = found
        self.reads: list[list[str]] = []

    def outputs(self, name: str) -> dict:
        self.reads.append([name])
        return self.found.get(name, {})

    def outputs_of(self, names) -> dict[str, dict]:
        names = list(dict.fromkeys(names))
        self.reads.append(names)
        return {n: self.found.get(n, {}) for n in names}


LIVE = {"activeColor": "green", "weights": {"blue": 0, "green": 100}, "dataStack": "data"}


def operator(found: dict[str, dict], live: dict = LIVE) -> SimpleNamespace:
    return SimpleNamespace(
        stack="live",
        ws=Stacks(found),
        edge=SimpleNamespace(arm_stacks={"blue": "blue", "green": "green"}),
        live=lambda: LiveOutputs.from_outputs(live),
    )


def view(blue: str | None, green: str | None, schema: dict, live: dict = LIVE):
    op = operator(
        {
            "data": {"dsn": "[secret]", "schema": schema},
            "blue": {"schemaRevision": blue} if blue else {},
            "green": {"schemaRevision": green} if green else {},
        },
        live,
    )
    return op, status_module.schema_view(op, LiveOutputs.from_outputs(live))


def test_status_says_each_arms_revision_what_is_applied_and_that_a_rollback_is_safe():
    op, found = view("0002_items_name", "0002_items_name", CONTRACTED)
    assert op.ws.reads == [["data", "blue", "green"]]  # one round, at once
    assert status_module.schema_lines(found) == [
        "schema (data stack data): current 0003_drop_title  applied 0001_items, "
        "0002_items_name, 0003_drop_title",
        "  blue  needs 0002_items_name",
        "  green needs 0002_items_name",
        "  a rollback to blue is schema-safe",
    ]
    _, stateless = view(None, "0002_items_name", CONTRACTED)
    assert status_module.schema_lines(stateless)[1:] == [
        "  blue  needs no schema revision (keeps no data)",
        "  green needs 0002_items_name",
        "  a rollback to blue is schema-safe",
    ]


def test_status_says_why_a_rollback_is_not_schema_safe():
    _, dropped = view("0001_items", "0002_items_name", CONTRACTED)
    assert status_module.schema_lines(dropped)[-1] == (
        "  a rollback to blue is not schema-safe: blue needs 0001_items, whose shape the applied "
        "contract 0003_drop_title removed"
    )
    expanded = {"current": "0001_items", "applied": ["0001_items"], "phases": {}, "floor": None}
    _, ahead = view("0002_items_name", "0001_items", expanded)
    assert status_module.schema_lines(ahead)[-1] == (
        "  a rollback to blue is not schema-safe: blue needs 0002_items_name, which is not applied"
    )
    assert ahead["rollback"] == {
        "color": "blue",
        "safe": False,
        "reason": "blue needs 0002_items_name, which is not applied",
    }


def test_without_a_data_stack_status_reads_none():
    op = operator({}, {k: v for k, v in LIVE.items() if k != "dataStack"})
    assert status_module.schema_view(op, op.live()) is None
    assert op.ws.reads == []


def test_status_json_gains_the_schema(capsys):
    from bluegreen.live_stack import ArmOutputs

    op = operator({"data": {"schema": CONTRACTED}})
    arms = {"blue": "0001_items", "green": "0002_items_name"}
    op.arms = lambda: {c: ArmOutputs(version="v2", schema_revision=r) for c, r in arms.items()}
    commands.status_json(op)
    record = json.loads(capsys.readouterr().out)
    assert op.ws.reads == [["data"]]  # the arm stacks were read already
    assert record["schema"] == {
        "dataStack": "data",
        "current": "0003_drop_title",
        "applied": CONTRACTED["applied"],
        "floor": "0002_items_name",
        "floorContract": "0003_drop_title",
        "arms": arms,
        "rollback": {
            "color": "blue",
            "safe": False,
            "reason": "blue needs 0001_items, whose shape the applied contract 0003_drop_title "
            "removed",
        },
    }
    op = operator({}, {k: v for k, v in LIVE.items() if k != "dataStack"})
    op.arms = lambda: {c: ArmOutputs(version="v2") for c in arms}
    commands.status_json(op)
    assert "schema" not in json.loads(capsys.readouterr().out)


def test_status_prints_the_schema_after_the_arms(monkeypatch):
    monkeypatch.setattr(status_module.queue, "status_lines", lambda where: [])
    lines: list[str] = []
    live = {**LIVE, "arms": {c: {"stack": c} for c in ("blue", "green")}}
    op = operator({"data": {"schema": CONTRACTED}, "green": {"schemaRevision": "0002_items_name"}})
    op.outputs_now = lambda: LiveOutputs.from_outputs(live)
    op.out = lines.append
    op.queue_where = lambda: None
    op.log = SimpleNamespace(last=lambda n: [])
    status_module.status(op)
    start = lines.index("  green not deployed (stack green)") + 1
    assert lines[start : start + 4] == [
        "schema (data stack data): current 0003_drop_title  applied 0001_items, "
        "0002_items_name, 0003_drop_title",
        "  blue  needs no schema revision (keeps no data)",
        "  green needs 0002_items_name",
        "  a rollback to blue is schema-safe",
    ]
