"""The data stack on Kubernetes: a PostgreSQL you are given (a managed one, an operator's in the
cluster), named by bluegreen:databaseDsn. Nothing is declared for it: the data stack only
migrates it (platforms/migration.py, from where `pulumi` runs: that machine must reach it, as the
arms' pods must) and exports its DSN, a secret, for the arms (k8s_arm.py mounts it as a file).

The password is bluegreen:databasePassword's, as on every platform, so that changing it is the
same command everywhere: the DSN names the role, the host, the port and the database, and the
program puts the password in. A DSN that carries a password of its own is refused (there would be
two to keep in step), and so is anything but a postgresql:// URL; the DSN is never shown in a
message. Set both as secrets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import pulumi

from bluegreen.config import SECRET, DataSettings
from bluegreen.config_parts.data_settings import DATABASE_PASSWORD
from bluegreen.reader import NAMESPACE, Reader
from platforms.base import DataEndpoint, DataPlatform

DATABASE_DSN = "databaseDsn"
EXAMPLE = "postgresql://bluegreen@db.example.com:5432/shop?sslmode=require"


def where_of(dsn: str) -> str | None:
    """`host:port/database` of a DSN as bluegreen:databaseDsn takes it; None when it is not one
    (not a postgresql:// URL with a role, a host and a database, or one with a password)."""
    try:
        parts = urlsplit(dsn)
        port = parts.port or 5432
    except ValueError:
        return None
    database = parts.path.lstrip("/")
    if (
        parts.scheme not in ("postgresql", "postgres")
        or not parts.username
        or not parts.hostname
        or not re.fullmatch(r"[^/\s]+", database)
        or parts.password is not None
        or "password" in parse_qs(parts.query)
    ):
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}/{database}"


def with_password(dsn: str, password: str) -> str:
    """The DSN with the role's password in it."""
    parts = urlsplit(dsn)
    login, _, place = parts.netloc.rpartition("@")
    netloc = f"{login}:{quote(password, safe='')}@{place}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class KubernetesData(DataPlatform):
    """A PostgreSQL given by its DSN: nothing declared, migrated all the same."""

    where: str
    """host:port/database of bluegreen:databaseDsn, which tells one database from another."""

    @classmethod
    def from_config(cls, read: Reader) -> KubernetesData:
        how = (
            f"pulumi config set --secret --stack {read.stack} {NAMESPACE}:{DATABASE_DSN} {EXAMPLE} "
            f"(the password is {NAMESPACE}:{DATABASE_PASSWORD}'s)"
        )
        value = read.optional(DATABASE_DSN)
        if value is None:
            read.missing(
                DATABASE_DSN,
                ": the kubernetes platform runs no database of its own: give the one the arms' "
                f"pods and this machine (the migration) reach, with {how}",
            )
            return cls("")
        if value == SECRET:  # read without its secrets (the tooling): the engine checks it
            return cls("")
        where = where_of(value)
        if where is None:
            read.problems.append(
                f"{NAMESPACE}:{DATABASE_DSN} is set to something else (not shown: it is a "
                "secret), but it must be a postgresql:// URL with a role, a host and a database "
                f"and no password, such as {EXAMPLE}: {how} (nothing was changed)"
            )
            return cls("")
        return cls(where)

    def database(self, name: str, parent: pulumi.Resource, s: DataSettings) -> DataEndpoint:
        config = pulumi.Config(NAMESPACE)
        given = config.require_secret(DATABASE_DSN)
        password = config.require_secret(DATABASE_PASSWORD)
        url = pulumi.Output.all(given, password).apply(lambda a: with_password(a[0], a[1]))
        return DataEndpoint(
            dsn=pulumi.Output.secret(url), instance=pulumi.Output.from_input(self.where)
        )
