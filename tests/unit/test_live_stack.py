"""The live stack's outputs as the cutover reads them (bluegreen/live_stack.py): missing keys
read as today's `.get` did, and values of the wrong type do not pass for right ones."""

from __future__ import annotations

from bluegreen.live_stack import ArmOutputs, LiveOutputs, SchemaOutputs, Traffic

OUTPUTS = {
    "activeColor": "green",
    "weights": {"blue": 75, "green": 25},
    "maintenance": False,
    "url": "http://127.0.0.1:8080/",
    "shadow": 10,
    "arms": {"blue": {"stack": "blue", "endpoint": "http://b", "version": "v1"}},
    "evidence": [{"to": {"activeColor": "green"}}],
    "metrics": {"source": "accessLog", "path": "/tmp/access.log"},
    "versions": {"blue": "v1", "green": "v2"},
}


def test_the_outputs_read_typed():
    live = LiveOutputs.from_outputs(OUTPUTS)
    assert live.deployed and live.active_color == "green"
    assert live.weight("green") == 25 and live.weight("red") is None
    assert (live.maintenance, live.url, live.shadow) == (False, "http://127.0.0.1:8080/", 10)
    assert live.arms == {"blue": ArmOutputs("http://b", "v1", (), "blue")}
    assert live.evidence == ({"to": {"activeColor": "green"}},)
    assert live.metrics == OUTPUTS["metrics"] and live.versions == OUTPUTS["versions"]
    assert live.traffic == Traffic("green", {"blue": 75, "green": 25})
    assert live.served() == {
        "activeColor": "green",
        "weights": {"blue": 75, "green": 25},
        "maintenance": False,
        "url": "http://127.0.0.1:8080/",
    }


def test_a_stack_never_deployed_has_nothing():
    for outputs in ({}, None):
        live = LiveOutputs.from_outputs(outputs)
        assert live == LiveOutputs() and not live.deployed
        assert live.active_color is None and live.weights is None and live.weight("blue") is None
        assert (live.maintenance, live.url, live.shadow, live.arms) == (None, None, 0, None)
        assert (live.evidence, live.metrics) == ((), None)


def test_values_of_the_wrong_type_read_as_missing():
    live = LiveOutputs.from_outputs(
        {"activeColor": "blue", "weights": [100], "arms": "x", "evidence": "x", "shadow": "x"}
    )
    assert live.deployed and live.active_color == "blue" and live.weights is None
    assert (live.arms, live.evidence, live.shadow) == (None, (), 0)
    assert LiveOutputs.from_outputs({"shadow": "25", "maintenance": 1}).shadow == 25
    assert LiveOutputs.from_outputs({"maintenance": 1}).maintenance is True


def test_an_arms_outputs_tolerate_missing_keys():
    assert ArmOutputs.from_outputs({}) == ArmOutputs()
    assert ArmOutputs.from_outputs(None).endpoint is None
    arm = ArmOutputs.from_outputs({"endpoint": "http://g", "version": "v2", "nodes": ["h:1"]})
    assert (arm.endpoint, arm.version, arm.nodes) == ("http://g", "v2", ("h:1",))
    assert ArmOutputs.from_outputs({"nodes": "h:1"}).nodes == ()


def test_traffic_compares_a_status_record_with_the_outputs():
    record = {"stack": "live", "activeColor": "green", "weights": {"blue": 75, "green": 25}}
    assert Traffic.from_outputs(record) == LiveOutputs.from_outputs(OUTPUTS).traffic
    assert Traffic.from_outputs(None) == Traffic()


def test_what_the_stacks_say_of_the_schema():
    assert ArmOutputs.from_outputs({"schemaRevision": "0002_items_name"}).schema_revision == (
        "0002_items_name"
    )
    assert ArmOutputs.from_outputs({"schemaRevision": 2}).schema_revision is None
    live = LiveOutputs.from_outputs({**OUTPUTS, "dataStack": "data", "rollbackWindowMinutes": 45})
    assert (live.data_stack, live.rollback_window_minutes) == ("data", 45)
    older = LiveOutputs.from_outputs({**OUTPUTS, "dataStack": "", "rollbackWindowMinutes": True})
    assert (older.data_stack, older.rollback_window_minutes) == (None, None)


CONTRACTED = {
    "current": "0003_drop_title",
    "applied": ["0001_items", "0002_items_name", "0003_drop_title"],
    "phases": {"0001_items": "expand", "0002_items_name": "expand", "0003_drop_title": "contract"},
    "floor": "0002_items_name",
}


def test_the_data_stacks_schema_says_which_release_can_run():
    schema = SchemaOutputs.from_outputs(CONTRACTED)
    assert (schema.current, schema.floor, schema.floor_contract) == (
        "0003_drop_title",
        "0002_items_name",
        "0003_drop_title",
    )
    assert schema.unsafe("0001_items") == (
        "whose shape the applied contract 0003_drop_title removed"
    )
    assert schema.unsafe("0002_items_name") is None and schema.unsafe(None) is None
    assert schema.unsafe("0004_later") == "which is not applied"
    # Before the contract there is no floor: every applied revision can run.
    expanded = SchemaOutputs.from_outputs({**CONTRACTED, "floor": None})
    assert expanded.floor_contract is None and expanded.unsafe("0001_items") is None
    # Missing or mistyped: nothing applied.
    assert SchemaOutputs.from_outputs(None) == SchemaOutputs()
    assert SchemaOutputs.from_outputs({"applied": "x", "floor": 3}) == SchemaOutputs()
