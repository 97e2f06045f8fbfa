"""The data stack and the arms that read it, under Pulumi mocks: what the data stack declares
(the cluster, the server, the migration and its pending SQL) with the password out of every
plain input, and what an arm with bluegreen:schemaRevision adds to one without it.

The lint runs squawk, a process: here it is replaced (tests/integration/test_items.py and the
end-to-end tests run the real one)."""

from __future__ import annotations

import pulumi
import pytest

from bluegreen import schema
from bluegreen.config import ConfigError
from tests.support.data_mocks import (
    ARM,
    ARM_OUTPUTS,
    DATA_OUTPUTS,
    DataMocks,
    build_arm_with_data,
)
from tests.support.mocks import build_arm, install, stack


@pytest.fixture
def mocks():
    yield install(DataMocks({"organization/bluegreen/data": DATA_OUTPUTS}))


SECRET_SIG = "4dabf18193072939515e22adb298388d"


def plain(value):
    """An input as the mocks see it, a secret's value unwrapped."""
    if isinstance(value, dict) and SECRET_SIG in value:
        return value["value"]
    return value


def test_an_arm_with_a_schema_revision_reads_the_data_stack(mocks):
    from components import data_from_stack

    s = stack("green", **ARM, schemaRevision="0002_items_name")

    @pulumi.runtime.test
    def run():
        arm = build_arm_with_data(s, data_from_stack)

        def check(_):
            service = mocks.created["green-service"].inputs
            dsn_file = "/repo/.bluegreen/green/green.dsn"
            assert f"--dsn-file={dsn_file}" in service["argv"]
            assert "--items-shape=v2" in service["argv"]
            assert plain(service["files"]) == {dsn_file: DATA_OUTPUTS["dsn"]}
            assert all("pw" not in word for word in service["argv"])
            assert mocks.created["green"].inputs["schema"] == {
                "needs": "0002_items_name",
                "applied": ["0001_items", "0002_items_name"],
                "dataStack": "organization/bluegreen/data",
            }
            assert "data" in mocks.created  # the StackReference

        return pulumi.Output.all(arm.urn, arm.exports["schemaRevision"], arm.endpoint).apply(check)

    run()


def test_an_arm_without_one_reads_no_data_stack(mocks):
    @pulumi.runtime.test
    def run():
        arm = build_arm(stack("green", **ARM))

        def check(_):
            service = mocks.created["green-service"].inputs
            assert "files" not in service and not any("dsn" in w for w in service["argv"])
            assert "schema" not in mocks.created["green"].inputs
            assert "data" not in mocks.created

        return arm.endpoint.apply(check)

    run()


def test_a_missing_data_stack_is_named():
    install(DataMocks({}, missing=True))
    from components import data_from_stack

    s = stack("green", **ARM, schemaRevision="0001_items", dataStack="dta").settings
    with pytest.raises(pulumi.RunError, match=r'bluegreen:dataStack is "dta", but stack'):
        data_from_stack(s)


def test_the_data_stack_declares_its_database_and_the_pending_migration(monkeypatch):
    from components import Data, DataArgs

    mocks = install(DataMocks({}))  # its first deploy: nothing applied yet
    monkeypatch.setattr(schema, "lint", lambda sql: [schema.Finding("X", "rule", "why")])
    pulumi.runtime.set_all_config(
        {"bluegreen:databasePassword": "s3cret-pw"}, ["bluegreen:databasePassword"]
    )
    loaded = stack("data", role="data", schemaRevision="0002_items_name", databasePassword="x")

    @pulumi.runtime.test
    def run():
        data = Data("data", DataArgs(loaded.settings, loaded.platform))

        def check(_):
            cluster = mocks.created["data-cluster"]
            assert cluster.typ == "pulumi-python:dynamic/local:PostgresCluster"
            server = mocks.created["data-postgres"].inputs
            assert server["healthUrl"] == "tcp://127.0.0.1:15432"
            assert server["stopSignal"] == "SIGINT"
            assert "s3cret-pw" not in repr(server)
            migration = mocks.created["data-migration"].inputs
            assert migration["target"] == "0002_items_name"
            assert [p["revision"] for p in migration["pending"]] == [
                "0001_items",
                "0002_items_name",
            ]
            assert migration["pending"][1]["phase"] == "expand"
            assert "ADD COLUMN IF NOT EXISTS name" in migration["pending"][1]["sql"]
            assert migration["pending"][0]["findings"] == [
                {"statement": "X", "rule": "rule", "message": "why"}
            ]
            assert migration["applied"] == []
            assert migration["armStacks"] == {
                "blue": "organization/bluegreen/blue",
                "green": "organization/bluegreen/green",
            }
            assert migration["liveStack"] == "organization/bluegreen/live"
            assert [r["id"] for r in migration["revisions"]] == [r.id for r in schema.revisions()]
            gate = mocks.created["data"].inputs
            assert gate["schemaRevision"] == "0002_items_name"

        return pulumi.Output.all(data.urn, data.schema).apply(check)

    try:
        run()
    finally:
        pulumi.runtime.set_all_config({}, [])


def test_a_target_before_what_the_stack_applied_is_refused_before_anything_is_declared():
    from components import Data, DataArgs

    mocks = install(DataMocks({"organization/bluegreen/data": DATA_OUTPUTS}))
    loaded = stack("data", role="data", schemaRevision="0001_items", databasePassword="x")
    with pytest.raises(pulumi.RunError, match="is at 0002_items_name already"):
        Data("data", DataArgs(loaded.settings, loaded.platform))
    assert mocks.created == {}


@pytest.mark.parametrize("with_data", [True, False])
def test_the_edge_passes_each_arms_revision_and_what_is_applied(with_data):
    from tests.support.mocks import build_edge

    data = {"organization/bluegreen/data": DATA_OUTPUTS} if with_data else {}
    mocks = install(DataMocks({**ARM_OUTPUTS, **data}))

    @pulumi.runtime.test
    def run():
        edge = build_edge(stack("live", role="edge", activeColor="green"))

        def check(_):
            gate = mocks.created["live"].inputs
            if not with_data:
                assert "schema" not in gate  # a project without a data stack: as before
                return
            assert gate["schema"] == {
                "arms": {"green": "0002_items_name"},
                "applied": ["0001_items", "0002_items_name"],
                "dataStack": "organization/bluegreen/data",
            }

        return pulumi.Output.all(edge.urn, edge.generation).apply(check)

    run()


def test_data_keys_are_checked():
    def problems(name: str, **values) -> str:
        with pytest.raises(ConfigError) as err:
            stack(name, **values)
        return str(err.value)

    assert (
        "bluegreen:schemaRevision must be one of the revisions in app/migrations (0001_items, "
        '0002_items_name, 0003_drop_title), got "9"'
    ) in problems("data", role="data", schemaRevision="9", databasePassword="x")
    assert "bluegreen:databasePassword is not set" in problems(
        "data", role="data", schemaRevision="0001_items"
    )
    # A secret set on the wrong stack is named, never shown.
    message = problems("green", **ARM, databasePassword="hunter2")
    assert "bluegreen:databasePassword belongs only in the data stack" in message
    assert "hunter2" not in message
    # Each platform names what it needs to run the database.
    assert "bluegreen:dataNode is not set" in problems(
        "data", role="data", platform="nixos", schemaRevision="0001_items", databasePassword="x"
    )
    assert "bluegreen:databaseDsn is not set" in problems(
        "data",
        role="data",
        platform="kubernetes",
        schemaRevision="0001_items",
        databasePassword="x",
    )
