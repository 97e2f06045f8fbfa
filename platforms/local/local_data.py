"""The local data stack's database: PostgreSQL on loopback, the way the other local services run.

Two resources: the cluster on disk (pg_cluster.py: `initdb` once, the password from the stack's
secret through an owner-only file removed at once) and the server, a `Process` (process.py):
`postgres -D <pgdata> -h <bindAddress> -p <databasePort> -k <its home>`, ready once it accepts a
connection, stopped with SIGINT (PostgreSQL's fast shutdown). The password is never on a command
line; the DSN the arms and the migration use is a secret output.

Where its files live: `<run dir>/pgdata` (the run dir is .bluegreen/data unless bluegreen:runDir
says). Run as root, PostgreSQL runs as the `postgres` user, who may not reach the project at all
(a checkout under /root, a test's 0700 temp dir): its home is then a directory of its own under
`ROOT_HOMES`, named by the run dir (`data_home`). Its log and pid file stay in the run dir.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
from dataclasses import dataclass
from urllib.parse import quote

import pulumi

from bluegreen.config import ConfigError, DataSettings
from bluegreen.config_parts.data_settings import DATABASE_PASSWORD
from bluegreen.reader import NAMESPACE, Reader
from platforms.base import DataEndpoint, DataPlatform
from platforms.local.loopback import read_bind_address, refuse_taken
from platforms.local.pg_cluster import Cluster, as_user
from platforms.local.process import Process, running_from

ROLE = "bluegreen"
"""The role the arms and the migration connect as (the cluster's owner)."""
ROOT_HOMES = "/var/lib/bluegreen-postgres"
SERVER_USER = "postgres"
"""Who runs PostgreSQL when the stack is deployed as root (PostgreSQL refuses root)."""
_SOCKET_MAX = 107
"""The longest Unix-socket path PostgreSQL takes; a longer home gets no socket (TCP only)."""


def bindir() -> str | None:
    """Where the newest installed PostgreSQL server's binaries are (initdb, postgres): Debian's
    /usr/lib/postgresql/<major>/bin, else the directory of an `initdb` on PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()],
    )
    if found:
        return os.path.dirname(found[-1])
    on_path = shutil.which("initdb")
    return os.path.dirname(on_path) if on_path else None


def data_home(run_dir: str, as_root: bool | None = None) -> str:
    """The directory the cluster and its socket live in: the run dir, or as root one of its own
    under `ROOT_HOMES` (the tests remove it with the run dir's processes)."""
    if not (os.geteuid() == 0 if as_root is None else as_root):
        return run_dir
    return f"{ROOT_HOMES}/{hashlib.sha256(run_dir.encode()).hexdigest()[:16]}"


def dsn(host: str, port: int, database: str, password: str) -> str:
    return f"postgresql://{ROLE}:{quote(password, safe='')}@{host}:{port}/{quote(database)}"


@dataclass(frozen=True)
class LocalData(DataPlatform):
    """PostgreSQL as a process on loopback."""

    bind_address: str
    port: int
    """bluegreen:databasePort: where PostgreSQL listens."""

    @classmethod
    def from_config(cls, read: Reader) -> LocalData:
        return cls(bind_address=read_bind_address(read), port=read.port("databasePort"))

    def preflight(self, s: DataSettings) -> None:
        if bindir() is None:
            raise ConfigError(
                [
                    f'{NAMESPACE}:platform is "local", but no PostgreSQL server is installed here '
                    "(no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH): install one "
                    "(e.g. apt-get install postgresql) (nothing was changed)"
                ]
            )
        ours = running_from(os.path.join(s.run_dir, "postgres.pid"))
        refuse_taken(self.bind_address, self.port, "databasePort", ours=ours)

    def database(self, name: str, parent: pulumi.Resource, s: DataSettings) -> DataEndpoint:
        bins = bindir() or "/usr/lib/postgresql/bin"  # preflight has refused a host without
        as_root = os.geteuid() == 0
        home = data_home(s.run_dir, as_root)
        pgdata = os.path.join(home, "pgdata")
        password = pulumi.Config(NAMESPACE).require_secret(DATABASE_PASSWORD)
        host, port = self.bind_address, self.port
        cluster = Cluster(
            f"{name}-cluster",
            {
                "bindir": bins,
                "home": home,
                "ownHome": home != s.run_dir,
                "pgdata": pgdata,
                "runAs": SERVER_USER if as_root else None,
                "user": ROLE,
                "database": s.app_name,
                "password": password,
                "host": host,
                "port": port,
            },
            pulumi.ResourceOptions(parent=parent, additional_secret_outputs=["password"]),
        )
        socket_dir = home if len(home) + len("/.s.PGSQL.65535") <= _SOCKET_MAX else ""
        server = Process(
            f"{name}-postgres",
            {
                "name": f"{s.app_name}-postgres",
                "argv": [
                    *as_user(SERVER_USER if as_root else None),
                    os.path.join(bins, "postgres"),
                    "-D",
                    pgdata,
                    "-h",
                    host,
                    "-p",
                    str(port),
                    "-k",
                    socket_dir,
                ],
                "cwd": s.run_dir,
                # A new cluster (its system identifier) is a new server, never the old one's.
                "env": {"LANG": "C.UTF-8", "BLUEGREEN_CLUSTER": cluster.systemId},
                "bind": host,
                "port": port,
                "portKey": f"{NAMESPACE}:databasePort",
                "healthUrl": f"tcp://{host}:{port}",
                "readyTimeout": 60,
                "stopSignal": "SIGINT",
                "stopGraceSeconds": 60,  # its shutdown checkpoint, never cut short by SIGKILL
                "logPath": os.path.join(s.run_dir, "postgres.log"),
                "pidPath": os.path.join(s.run_dir, "postgres.pid"),
            },
            pulumi.ResourceOptions(parent=parent, depends_on=[cluster]),
        )
        url = pulumi.Output.all(password, server.pid).apply(
            lambda args: dsn(host, port, s.app_name, args[0])
        )
        return DataEndpoint(dsn=pulumi.Output.secret(url), instance=cluster.systemId)
