"""The kubernetes data stack (a database given by its DSN) and the kubernetes arms that read it,
under Pulumi mocks: nothing declared for the database but its migration, the DSN refused unless
it is a postgresql:// URL without a password (never shown), the arms' DSN as a mounted Secret
(never an environment variable), and an arm without bluegreen:schemaRevision unchanged."""

from __future__ import annotations

import pulumi
import pytest
from pulumi.runtime import rpc

from bluegreen import schema
from bluegreen.config import ConfigError
from platforms.kubernetes import k8s_data
from tests.support.data_mocks import DataMocks
from tests.support.mocks import build_arm, deploy, install, stack, where

PASSWORD = "s3cret pw/@"
GIVEN = "postgresql://bluegreen@db.shop.svc.cluster.local:5432/shop?sslmode=require"
DSN = "postgresql://bluegreen:s3cret%20pw%2F%40@db.shop.svc.cluster.local:5432/shop?sslmode=require"
DATA_OUTPUTS = {
    "dsn": DSN,
    "schema": {"current": "0002_items_name", "applied": ["0001_items", "0002_items_name"]},
}
K8S = {"platform": "kubernetes", "kubeContext": "prod-eu", "namespace": "shop"}


class Mocks(DataMocks):
    """The data stack's outputs; a Secret gets the name Pulumi gives it, the migration what it
    applied."""

    def state(self, args):
        state = dict(args.inputs)
        if args.typ == "kubernetes:core/v1:Secret":
            state["metadata"] = {**state["metadata"], "name": f"{args.name}-5f3a9c1e"}
        if args.typ == "pulumi-python:dynamic/data:Migration":
            state.update(applied=["0001_items", "0002_items_name"], current="0002_items_name")
        return state


@pytest.fixture
def mocks():
    yield install(Mocks({"organization/bluegreen/data": DATA_OUTPUTS}))
    pulumi.runtime.set_all_config({}, [])


def plain(value):
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


def data_stack(**values):
    values = {"schemaRevision": "0002_items_name", "databasePassword": "x", **values}
    return stack("data", role="data", **{"platform": "kubernetes", **values})


def problem(**values) -> str:
    with pytest.raises(ConfigError) as err:
        data_stack(**values)
    (found,) = err.value.problems
    return found


# --- the keys ----------------------------------------------------------------------------------


def test_the_dsn_is_required_and_nothing_else_of_a_cluster():
    assert data_stack(databaseDsn=GIVEN).platform.where == "db.shop.svc.cluster.local:5432/shop"
    assert problem().startswith(
        "bluegreen:databaseDsn is not set: the kubernetes platform runs no database of its own"
    )


@pytest.mark.parametrize(
    "value",
    [
        "postgresql://bluegreen:hunter2@db.example.com:5432/shop",  # a password of its own
        "postgresql://bluegreen@db.example.com/shop?password=hunter2",
        "mysql://bluegreen@db.example.com/shop",
        "postgresql://bluegreen@db.internal:5432",  # no database
        "postgresql://db.example.com:5432/shop",  # no role
        "postgresql://bluegreen@db.example.com:99999/shop",
        "host=db.example.com dbname=shop",
    ],
)
def test_a_dsn_that_is_not_a_url_without_a_password_is_refused_never_shown(value):
    found = problem(databaseDsn=value)
    assert found.startswith("bluegreen:databaseDsn is set to something else (not shown")
    assert "a postgresql:// URL with a role, a host and a database and no password" in found
    assert value not in found and "hunter2" not in found


def test_the_password_goes_into_the_dsn_escaped():
    assert k8s_data.with_password(GIVEN, PASSWORD) == DSN
    assert k8s_data.with_password("postgres://u@[fd00::5]:6432/db", "p") == (
        "postgres://u:p@[fd00::5]:6432/db"
    )


# --- the data stack ----------------------------------------------------------------------------


def test_the_data_stack_migrates_the_given_database_and_declares_nothing_else(mocks, monkeypatch):
    from components import Data, DataArgs

    monkeypatch.setattr(schema, "lint", lambda sql: [])
    pulumi.runtime.set_all_config(
        {"bluegreen:databaseDsn": GIVEN, "bluegreen:databasePassword": PASSWORD},
        ["bluegreen:databaseDsn", "bluegreen:databasePassword"],
    )
    loaded = data_stack(databaseDsn=GIVEN)

    @pulumi.runtime.test
    def run():
        data = Data("data", DataArgs(loaded.settings, loaded.platform))

        def check(args):
            assert sorted(a.typ for a in mocks.created.values()) == [
                "bluegreen:index:Data",
                "pulumi-python:dynamic/data:Migration",
            ]
            migration = mocks.created["data-migration"].inputs
            assert rpc.is_rpc_secret(migration["dsn"]) and plain(migration["dsn"]) == DSN
            assert migration["database"] == "db.shop.svc.cluster.local:5432/shop"
            assert args[1] == DSN

        return pulumi.Output.all(data.urn, data.dsn, data.schema).apply(check)

    run()


# --- the arms ----------------------------------------------------------------------------------


def arm_settings(**values):
    return stack(
        "blue",
        role="arm",
        color="blue",
        version="v7",
        image="registry.example.com/shop",
        appPort="8080",
        healthPath="/healthz/ready",
        **{**K8S, **values},
    )


def build_with_data(loaded):
    from components import Arm, ArmArgs, data_from_stack

    s = loaded.settings
    return Arm(s.color, ArmArgs(s, loaded.platform, data=data_from_stack(s)))


@pytest.mark.parametrize(("revision", "shape"), [("0001_items", "v1"), ("0002_items_name", "v2")])
def test_an_arm_with_a_revision_mounts_the_dsn_from_a_secret(mocks, revision, shape):
    deploy(lambda: build_with_data(arm_settings(schemaRevision=revision)))
    secret = mocks.created["blue-dsn"]
    assert secret.typ == "kubernetes:core/v1:Secret", where(secret)
    assert "blue-k8s" in secret.provider
    assert secret.inputs["immutable"] is True  # a new DSN: a new Secret, and a rollout
    assert "name" not in secret.inputs["metadata"]  # Pulumi names it, anew each time
    assert secret.inputs["metadata"]["namespace"] == "shop"
    assert rpc.is_rpc_secret(secret.inputs["stringData"])
    assert plain(secret.inputs["stringData"]) == {"dsn": DSN}

    pod = mocks.created["blue-deployment"].inputs["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {
            "name": "dsn",
            "secret": {
                "secretName": "blue-dsn-5f3a9c1e",
                "defaultMode": 0o400,
                "items": [{"key": "dsn", "path": "dsn"}],
            },
        }
    ]
    (container,) = pod["containers"]
    assert container["volumeMounts"] == [
        {"name": "dsn", "mountPath": "/etc/bluegreen", "readOnly": True}
    ]
    assert container["args"][-2:] == ["--dsn-file=/etc/bluegreen/dsn", f"--items-shape={shape}"]
    assert "env" not in container and "envFrom" not in container
    assert PASSWORD not in repr(mocks.created["blue-deployment"].inputs)


BEFORE_TYPES = [
    "bluegreen:index:Arm::blue",
    "kubernetes:apps/v1:Deployment::blue-deployment",
    "kubernetes:core/v1:Service::blue-service",
    "pulumi:providers:kubernetes::blue-k8s",
]
"""What a kubernetes arm stack declared before there was a data stack."""


def test_an_arm_without_one_declares_exactly_what_it_did(mocks):
    deploy(lambda: build_arm(arm_settings()))
    assert sorted(f"{a.typ}::{n}" for n, a in mocks.created.items()) == BEFORE_TYPES
    pod = mocks.created["blue-deployment"].inputs["spec"]["template"]["spec"]
    assert set(pod) == {"containers"}
    (container,) = pod["containers"]
    assert set(container) == {"name", "image", "args", "ports", "readinessProbe"}
    assert container["args"] == [
        "--color=blue",
        "--version=v7",
        "--host=0.0.0.0",
        "--port=8080",
        "--health-path=/healthz/ready",
    ]
