"""What an aws arm with bluegreen:schemaRevision adds to its instances: the data stack's DSN, and
a way to the database.

The DSN is a secret, and user data is not (anyone who may describe the launch template reads it,
and the instance serves it on its metadata endpoint): it goes to an SSM SecureString parameter,
`/bluegreen/<app>/<colour>/dsn`, which the instances read at boot through an instance role
allowed `ssm:GetParameter` on that one parameter (SSM decrypts it with the account's `aws/ssm`
key), into a root-only file; the app's unit hands that file to the app as a systemd credential
(`--dsn-file=%d/dsn`). The user data names the parameter and its version, never its value, so a
new DSN is a new launch template version, rolled out by the group's instance refresh.

The instances also join the data stack's db-clients security group (aws_data.py), looked up by
its name in the arm's VPC: the only group the database takes connections from. That group is in
one VPC, so an arm in several regions (bluegreen:armRegions) cannot read a data stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from bluegreen.config import ArmSettings
from platforms.aws.aws_data import clients_group_name
from platforms.aws.vpc import Network, tags_of
from platforms.base import DataLink

DSN_FILE = "/etc/bluegreen/dsn"
"""Where an instance keeps the DSN it read at boot: root's only."""


@dataclass(frozen=True)
class DsnFetch:
    """What the boot script reads: the parameter, where and which version (no secret)."""

    parameter: str
    region: str
    version: int
    items_shape: str


@dataclass(frozen=True)
class DataAccess:
    """What the arm's launch template gets for the data stack."""

    fetch: pulumi.Output[DsnFetch]
    profile_arn: pulumi.Output[str]
    clients_group: pulumi.Output[str]
    """The data stack's db-clients security group's id."""
    ready: list[pulumi.Resource]
    """What must exist before an instance boots (the role's permission to read the DSN)."""


def parameter_name(s: ArmSettings) -> str:
    return f"/bluegreen/{s.app_name}/{s.color}/dsn"


def data_access(
    name: str, parent: pulumi.Resource, s: ArmSettings, network: Network, data: DataLink
) -> DataAccess:
    """The parameter, the instances' role and profile, and the db-clients group to join."""
    assert s.schema is not None
    tags = tags_of(s, s.color, s.version)
    opts = pulumi.ResourceOptions(parent=parent)
    parameter = aws.ssm.Parameter(
        f"{name}-dsn",
        name=parameter_name(s),
        type="SecureString",
        value=data.dsn,
        description=f"bluegreen {s.app_name} {s.color}: the DSN of the data stack's database",
        tags=tags,
        opts=opts,
    )
    role = aws.iam.Role(
        f"{name}-instance-role",
        assume_role_policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "ec2.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
        description=f"bluegreen {s.app_name} {s.color}: its instances, which read the DSN",
        tags=tags,
        opts=opts,
    )
    policy = aws.iam.RolePolicy(
        f"{name}-read-dsn",
        role=role.id,
        policy=parameter.arn.apply(
            lambda arn: json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": arn}
                    ],
                }
            )
        ),
        opts=opts,
    )
    profile = aws.iam.InstanceProfile(
        f"{name}-instance-profile", role=role.name, tags=tags, opts=opts
    )
    clients = aws.ec2.get_security_group_output(
        vpc_id=network.vpc_id, name=clients_group_name(s.app_name, s.schema.data_stack)
    )
    region = aws.get_region_output().region
    fetch = pulumi.Output.all(region, parameter.version).apply(
        lambda args: DsnFetch(parameter_name(s), str(args[0]), int(args[1]), data.items_shape)
    )
    return DataAccess(
        fetch=fetch, profile_arn=profile.arn, clients_group=clients.id, ready=[policy]
    )


def fetch_script(fetch: DsnFetch, safe) -> str:
    """The boot script's lines that read the DSN into `DSN_FILE` (retrying while the role's
    permission reaches IAM everywhere); `safe` refuses what could break out of a shell word."""
    read = (
        f"aws ssm get-parameter --region {safe(fetch.region)} --name {safe(fetch.parameter)} "
        f"--with-decryption --query Parameter.Value --output text >{DSN_FILE}.new"
    )
    return f"""\
# The data stack's DSN, version {int(fetch.version)} of {fetch.parameter}: root's only.
umask 077
mkdir -p {DSN_FILE.rsplit("/", 1)[0]}
n=0
until {read}; do
  n=$((n + 1)); [ "$n" -lt 30 ] || exit 1; sleep 2
done
mv {DSN_FILE}.new {DSN_FILE}
umask 022
"""
