"""The aws data stack (RDS PostgreSQL) and the aws arms that read it, under Pulumi mocks: what the
database is declared with, who may reach it, how an arm's instances get the DSN (SSM, never the
user data), what is refused before anything changes, and that an arm without
bluegreen:schemaRevision declares exactly what it did before."""

from __future__ import annotations

import base64
import json

import pulumi
import pytest
from pulumi.runtime import rpc

from bluegreen import schema
from bluegreen.config import ConfigError
from platforms.aws import aws_arm, aws_arm_data, aws_data
from platforms.local import local_data
from tests.support import aws_mocks
from tests.support.mocks import build_arm, deploy, install, where

PASSWORD = "s3cret-Pass_word"
ADDRESS = "data-postgres.abc123.eu-west-1.rds.amazonaws.com"
DSN = f"postgresql://bluegreen:{PASSWORD}@{ADDRESS}:15432/shop?sslmode=require"
CLIENTS_SG = "sg-0c1e2d3f4a5b6c7d8"
DATA_OUTPUTS = {
    "dsn": DSN,
    "schema": {"current": "0002_items_name", "applied": ["0001_items", "0002_items_name"]},
}


class Mocks(aws_mocks.Mocks):
    """The aws mocks, with what RDS, SSM and IAM compute, the data stack's outputs and the
    db-clients group found by its name."""

    def state(self, args):
        state = super().state(args)
        if args.typ == "aws:rds/subnetGroup:SubnetGroup":
            state.setdefault("name", args.name)
        if args.typ == "aws:rds/instance:Instance":
            state.update(address=ADDRESS, resourceId="db-ABCDEFGHIJKLMNOP")
        if args.typ == "aws:ssm/parameter:Parameter":
            state.update(arn=f"arn:aws:ssm:eu-west-1:123456789012:parameter{args.inputs['name']}")
            state["version"] = 3
        if args.typ.startswith("aws:iam/"):
            state["arn"] = f"arn:aws:iam::123456789012:{args.name}"
            state.setdefault("name", args.name)
        if args.typ == "pulumi-python:dynamic/data:Migration":
            state.update(applied=["0001_items", "0002_items_name"], current="0002_items_name")
        return state

    def call(self, args):
        if args.token == "pulumi:pulumi:readStackOutputs":
            return {"name": args.args["name"], "outputs": self.stacks.get(args.args["name"], {})}
        if args.token == "aws:ec2/getSecurityGroup:getSecurityGroup":
            self.looked_up = dict(args.args)
            return {**args.args, "id": CLIENTS_SG, "arn": f"arn:aws:ec2:::{CLIENTS_SG}"}
        return super().call(args)


@pytest.fixture
def mocks():
    stacks = {**aws_mocks.STACKS, "organization/bluegreen/data": DATA_OUTPUTS}
    yield install(Mocks(stacks))
    pulumi.runtime.set_all_config({}, [])


def plain(value):
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


def data_stack(**values):
    values = {"schemaRevision": "0002_items_name", "databasePassword": PASSWORD, **values}
    return aws_mocks.settings("data", role="data", **values)


def arm_settings(**values):
    return aws_mocks.settings(
        "blue",
        role="arm",
        color="blue",
        version="v7",
        ami="ami-0123abcd",
        healthPath="/healthz/ready",
        appPort="8080",
        **values,
    )


def problems(loader, **values) -> list[str]:
    with pytest.raises(ConfigError) as err:
        loader(**values)
    return err.value.problems


# --- the keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password", ["short", "has a space x", "has/slash", 'q"uote12', "at@sign12"]
)
def test_a_password_rds_refuses_is_named_never_shown(password):
    (found,) = problems(data_stack, databasePassword=password)
    assert found.startswith("bluegreen:databasePassword is set (to a value not shown")
    assert "8 to 128 printable ASCII characters other than a space" in found
    assert password not in found


def test_the_instance_class_and_port_are_checked():
    assert problems(data_stack, databaseInstanceClass="t3.small") == [
        "bluegreen:databaseInstanceClass must be an RDS instance class such as db.t4g.micro or "
        'db.m7g.large, got "t3.small"'
    ]
    assert problems(data_stack, databasePort="80") == [
        'bluegreen:databasePort must be an integer port from 1024 to 65535, got "80"'
    ]


def test_an_arm_in_several_regions_cannot_read_the_data_stack():
    regions = '{"us-east-1": "vpc-0aaa1111:subnet-0ccc3333:subnet-0ddd4444"}'
    (found,) = problems(arm_settings, schemaRevision="0002_items_name", armRegions=regions)
    assert found.startswith(f'bluegreen:armRegions is "{regions}", but with bluegreen:schemaRev')
    assert "unset bluegreen:armRegions, or bluegreen:schemaRevision (nothing was changed)" in found


def test_the_role_is_the_local_platforms_and_names_are_what_rds_takes():
    assert aws_data.ROLE == local_data.ROLE
    assert aws_data.database_name("my-shop") == "my_shop"
    assert (
        aws_data._identifier("shop", "org/proj/data_eu.1", "final")
        == "shop-org-proj-data-eu-1-final"
    )
    assert aws_data.clients_group_name("shop", "org/proj/data") == "shop-data-db-clients"


# --- the data stack ----------------------------------------------------------------------------


def test_the_data_stack_declares_rds_postgresql_reachable_from_its_clients_only(mocks, monkeypatch):
    from components import Data, DataArgs

    monkeypatch.setattr(schema, "lint", lambda sql: [])
    pulumi.runtime.set_all_config(
        {"bluegreen:databasePassword": PASSWORD}, ["bluegreen:databasePassword"]
    )
    loaded = data_stack()

    @pulumi.runtime.test
    def run():
        data = Data("data", DataArgs(loaded.settings, loaded.platform))

        def check(args):
            dsn = args[1]
            clients = mocks.created["data-db-clients"]
            assert clients.inputs["name"] == "shop-data-db-clients", where(clients)
            assert clients.inputs["vpcId"] == "vpc-0123abcd"
            assert not clients.inputs.get("ingress") and not clients.inputs.get("egress")
            guard = mocks.created["data-db"]
            (rule,) = guard.inputs["ingress"]
            assert rule == {
                "protocol": "tcp",
                "fromPort": 15432,
                "toPort": 15432,
                "securityGroups": ["data-db-clients-id"],
            }, where(guard)
            assert not guard.inputs.get("egress")
            subnets = mocks.created["data-subnets"]
            assert subnets.inputs["subnetIds"] == ["subnet-0aaa1111", "subnet-0bbb2222"]
            db = mocks.created["data-postgres"]
            i = db.inputs
            assert (i["engine"], i["engineVersion"], i["instanceClass"]) == (
                "postgres",
                "16",
                "db.t4g.micro",
            ), where(db)
            assert (i["username"], i["dbName"], i["port"]) == ("bluegreen", "shop", 15432)
            assert i["storageEncrypted"] is True and i["deletionProtection"] is True
            assert i["skipFinalSnapshot"] is False
            assert i["finalSnapshotIdentifier"] == "shop-data-final"
            assert i["publiclyAccessible"] is False
            assert i["dbSubnetGroupName"] == "data-subnets"
            assert i["vpcSecurityGroupIds"] == ["data-db-id"]
            assert rpc.is_rpc_secret(i["password"]) and plain(i["password"]) == PASSWORD
            assert PASSWORD not in repr({k: v for k, v in i.items() if k != "password"})
            migration = mocks.created["data-migration"].inputs
            assert plain(migration["dsn"]) == DSN == dsn
            assert migration["database"] == "db-ABCDEFGHIJKLMNOP"

        return pulumi.Output.all(data.urn, data.dsn, data.schema).apply(check)

    run()


# --- the arms ----------------------------------------------------------------------------------


def build_with_data(loaded):
    from components import Arm, ArmArgs, data_from_stack

    s = loaded.settings
    return Arm(s.color, ArmArgs(s, loaded.platform, data=data_from_stack(s)))


def test_an_arm_with_a_revision_reads_the_dsn_from_ssm_at_boot(mocks):
    deploy(lambda: build_with_data(arm_settings(schemaRevision="0002_items_name")))
    parameter = mocks.created["blue-dsn"]
    assert parameter.inputs["type"] == "SecureString", where(parameter)
    assert parameter.inputs["name"] == "/bluegreen/shop/blue/dsn"
    assert rpc.is_rpc_secret(parameter.inputs["value"])
    assert plain(parameter.inputs["value"]) == DSN

    role = mocks.created["blue-instance-role"]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    policy = json.loads(mocks.created["blue-read-dsn"].inputs["policy"])
    assert policy["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": "arn:aws:ssm:eu-west-1:123456789012:parameter/bluegreen/shop/blue/dsn",
        }
    ]
    assert mocks.created["blue-read-dsn"].inputs["role"] == "blue-instance-role-id"

    template = mocks.created["blue-launch"].inputs
    profile = "arn:aws:iam::123456789012:blue-instance-profile"
    assert template["iamInstanceProfile"] == {"arn": profile}
    assert template["vpcSecurityGroupIds"] == ["blue-instances-id", CLIENTS_SG]
    assert mocks.looked_up == {"vpcId": "vpc-0123abcd", "name": "shop-data-db-clients"}

    script = base64.b64decode(template["userData"]).decode()
    assert PASSWORD not in script and "postgresql://" not in script
    assert (
        "aws ssm get-parameter --region eu-west-1 --name /bluegreen/shop/blue/dsn "
        "--with-decryption --query Parameter.Value --output text >/etc/bluegreen/dsn.new"
    ) in script
    assert "version 3 of /bluegreen/shop/blue/dsn" in script  # a new DSN: a new template
    assert "umask 077" in script and "mv /etc/bluegreen/dsn.new /etc/bluegreen/dsn" in script
    assert script.index("get-parameter") < script.index("systemctl enable --now")
    (exec_start,) = [line for line in script.splitlines() if line.startswith("ExecStart=")]
    assert exec_start.endswith("--dsn-file=%d/dsn --items-shape=v2")
    assert "LoadCredential=dsn:/etc/bluegreen/dsn" in script.splitlines()


def test_the_boot_script_refuses_what_could_break_out():
    fetch = aws_arm_data.DsnFetch("/bluegreen/shop/blue/dsn; curl evil", "eu-west-1", 1, "v2")
    with pytest.raises(ValueError, match="refusing"):
        aws_arm.user_data(arm_settings().settings, 8080, fetch)


BEFORE = [
    "aws:autoscaling/group:Group::blue-group",
    "aws:ec2/launchTemplate:LaunchTemplate::blue-launch",
    "aws:ec2/securityGroup:SecurityGroup::blue-direct-sg",
    "aws:ec2/securityGroup:SecurityGroup::blue-instances",
    "aws:lb/listener:Listener::blue-direct-http",
    "aws:lb/loadBalancer:LoadBalancer::blue-direct",
    "aws:lb/targetGroup:TargetGroup::blue-tg",
    "bluegreen:index:Arm::blue",
]
"""What an aws arm stack declared before there was a data stack."""


def test_an_arm_without_one_declares_exactly_what_it_did(mocks):
    loaded = arm_settings()
    deploy(lambda: build_arm(loaded))
    assert sorted(f"{a.typ}::{n}" for n, a in mocks.created.items()) == BEFORE
    template = mocks.created["blue-launch"].inputs
    assert set(template) == {
        "userData",
        "tags",
        "vpcSecurityGroupIds",
        "metadataOptions",
        "imageId",
        "instanceType",
    }
    assert template["vpcSecurityGroupIds"] == ["blue-instances-id"]
    script = base64.b64decode(template["userData"]).decode()
    assert script == aws_arm.user_data(loaded.settings, 8080)
    assert "ssm" not in script and "dsn" not in script and "LoadCredential" not in script
    assert "\nDynamicUser=yes\n\n[Install]\n" in script
