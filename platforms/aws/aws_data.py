"""The data stack's database on AWS: RDS PostgreSQL in the arms' VPC, with the local platform's
settings (the role `bluegreen`, the database named after bluegreen:appName, bluegreen:databasePort,
the password bluegreen:databasePassword).

- Where: a DB subnet group of bluegreen:subnetIds in bluegreen:vpcId, never publicly accessible.
- Who may connect: the database's security group takes bluegreen:databasePort from one security
  group only, `<app>-<data stack>-db-clients`, which this stack declares with no rules of its own:
  a membership. An arm with bluegreen:schemaRevision looks it up by that name in its VPC and puts
  its instances in it (aws_arm_data.py). The migration (platforms/migration.py) runs where
  `pulumi` runs and connects too: run `pulumi up -s data` from a machine in that VPC and in that
  group (a CI runner, a bastion), or through a tunnel ending on one.
- What is kept: storage encrypted, deletion protection on (`pulumi destroy -s data` fails until
  it is turned off by hand), backups for 7 days, and a final snapshot
  `<app>-<data stack>-final` when the instance is deleted.
- The DSN (a secret output) asks for TLS (`sslmode=require`); RDS PostgreSQL 15 and later refuse
  connections without it by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

import pulumi
import pulumi_aws as aws

from bluegreen.config import SECRET, DataSettings
from bluegreen.config_parts.data_settings import DATABASE_PASSWORD
from bluegreen.reader import NAMESPACE, Alphabet, Reader
from platforms.aws.vpc import Network, tags_of
from platforms.base import DataEndpoint, DataPlatform

ROLE = "bluegreen"
"""The role the arms and the migration connect as: the local platform's (local_data.ROLE)."""
ENGINE_VERSION = "16"
"""The major version; RDS applies minor versions itself."""
STORAGE_GB = 20
MAX_STORAGE_GB = 100
"""RDS grows the storage up to this on its own."""
BACKUP_DAYS = 7
_INSTANCE_CLASS = Alphabet(
    r"db\.[a-z0-9]+\.[a-z0-9]+", "an RDS instance class such as db.t4g.micro or db.m7g.large"
)
_RDS_PASSWORD = re.compile(r"[!#-.0-?A-~]{8,128}")
"""What RDS takes as a master password: 8 to 128 printable ASCII characters but space " / @."""


def clients_group_name(app: str, data_stack: str) -> str:
    """The security group whose members reach the database: declared by the data stack, joined
    by the instances of the arms that read it (data_stack as either names it)."""
    return f"{app}-{data_stack.rsplit('/', 1)[-1]}-db-clients"


def database_name(app: str) -> str:
    """bluegreen:appName as RDS takes a database name (letters, digits and `_`)."""
    return app.replace("-", "_")


def _identifier(app: str, stack: str, suffix: str) -> str:
    """An RDS identifier: letters, digits and single hyphens, starting with a letter."""
    return re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9]", "-", f"{app}-{stack}-{suffix}")).strip("-")


def dsn(host: str, port: int, database: str, password: str) -> str:
    return (
        f"postgresql://{ROLE}:{quote(password, safe='')}@{host}:{int(port)}/{quote(database)}"
        "?sslmode=require"
    )


@dataclass(frozen=True)
class AwsData(DataPlatform):
    """PostgreSQL on RDS, reachable from the arms' instances only."""

    network: Network
    port: int
    """bluegreen:databasePort."""
    instance_class: str
    """bluegreen:databaseInstanceClass."""

    @classmethod
    def from_config(cls, read: Reader) -> AwsData:
        password = read.optional(DATABASE_PASSWORD)
        if password not in (None, SECRET) and not _RDS_PASSWORD.fullmatch(password):
            read.problems.append(
                f"{NAMESPACE}:{DATABASE_PASSWORD} is set (to a value not shown: it is a secret), "
                "but RDS refuses it: use 8 to 128 printable ASCII characters other than a space, "
                f'", / and @ (pulumi config set --secret --stack {read.stack} {NAMESPACE}:'
                f"{DATABASE_PASSWORD} <password>) (nothing was changed)"
            )
        return cls(
            network=Network.from_config(read),
            port=read.port("databasePort"),
            instance_class=read.matching("databaseInstanceClass", _INSTANCE_CLASS),
        )

    def database(self, name: str, parent: pulumi.Resource, s: DataSettings) -> DataEndpoint:
        password = pulumi.Config(NAMESPACE).require_secret(DATABASE_PASSWORD)
        tags = tags_of(s)
        opts = pulumi.ResourceOptions(parent=parent)
        clients = aws.ec2.SecurityGroup(
            f"{name}-db-clients",
            name=clients_group_name(s.app_name, s.stack),
            vpc_id=self.network.vpc_id,
            description=f"bluegreen {s.app_name}: members reach the data stack's database",
            tags=tags,
            opts=opts,
        )
        # No egress: the database answers its clients and starts no connection of its own.
        guard = aws.ec2.SecurityGroup(
            f"{name}-db",
            vpc_id=self.network.vpc_id,
            description=f"bluegreen {s.app_name}: PostgreSQL from the db-clients group only",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp",
                    from_port=self.port,
                    to_port=self.port,
                    security_groups=[clients.id],
                )
            ],
            tags=tags,
            opts=opts,
        )
        subnets = aws.rds.SubnetGroup(
            f"{name}-subnets",
            subnet_ids=list(self.network.subnet_ids),
            description=f"bluegreen {s.app_name}: the arms' subnets",
            tags=tags,
            opts=opts,
        )
        database = database_name(s.app_name)
        db = aws.rds.Instance(
            f"{name}-postgres",
            engine="postgres",
            engine_version=ENGINE_VERSION,
            instance_class=self.instance_class,
            allocated_storage=STORAGE_GB,
            max_allocated_storage=MAX_STORAGE_GB,
            storage_type="gp3",
            storage_encrypted=True,
            db_name=database,
            username=ROLE,
            password=password,
            port=self.port,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[guard.id],
            publicly_accessible=False,
            deletion_protection=True,
            skip_final_snapshot=False,
            final_snapshot_identifier=_identifier(s.app_name, s.stack, "final"),
            copy_tags_to_snapshot=True,
            backup_retention_period=BACKUP_DAYS,
            auto_minor_version_upgrade=True,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=parent, additional_secret_outputs=["password"]),
        )
        url = pulumi.Output.all(password, db.address, db.port).apply(
            lambda args: dsn(args[1], int(args[2]), database, args[0])
        )
        # The DbiResourceId: one instance's for its whole life, another's when it is replaced.
        return DataEndpoint(dsn=pulumi.Output.secret(url), instance=db.resource_id)
