"""The local data stack's PostgreSQL cluster on disk, as a Pulumi resource: `initdb` once.

`create` runs `initdb` into `pgdata` (owner-only, scram-sha-256 for every connection, the role's
password from the stack's secret through a password file that is owner-only and removed at once,
never on a command line) and creates the app's database in single-user mode, so no server has to
run for it. A data directory already there is adopted as it is: a second `pulumi up`, or one after
the state was lost, never runs `initdb` over data. `delete` (`pulumi destroy -s data`) removes the
data directory, once the server (a `Process`, which depends on this) has stopped: a destroyed
stack leaves nothing behind, its data included (docs/data.md).

A change of the password is an update: the new password is set on the running server, as a SCRAM
verifier computed here (the password itself never reaches the server or its log). A new data
directory, role or database name is a new cluster.

Run as root, PostgreSQL (which refuses to run as root) runs as `runAs`, and its files live where
that user can reach them (`local_data.data_home`). This module keeps its name and place: its
provider is pickled into the stack's state by module path.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import time
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from platforms.local.process import start_ticks

_REPLACE_ON = ("pgdata", "user", "database")


def system_id(pgdata: str) -> str:
    """The cluster's system identifier (pg_control's first 8 bytes): new with every `initdb`."""
    with open(os.path.join(pgdata, "global", "pg_control"), "rb") as f:
        return str(int.from_bytes(f.read(8), "little"))


def as_user(run_as: str | None) -> list[str]:
    """The words that run a command as `run_as` (none: as ourselves). `setpriv` execs in place,
    so a server's pid is its own; and subprocess's own user= would fork without vfork, which
    crashes the child of a provider process with gRPC's threads running."""
    if not run_as:
        return []
    return ["setpriv", f"--reuid={run_as}", f"--regid={run_as}", "--clear-groups", "--"]


def _own(path: str, run_as: str | None, mode: int) -> None:
    os.chmod(path, mode)
    if run_as:
        pw = pwd.getpwnam(run_as)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _run(argv: list[str], run_as: str | None, cwd: str, stdin: str = "") -> None:
    done = subprocess.run(
        [*as_user(run_as), *argv],
        input=stdin,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
    )
    # Single-user mode answers a failed statement with ERROR and still exits 0.
    if done.returncode != 0 or "ERROR:" in done.stdout + done.stderr:
        raise RuntimeError(
            f"{os.path.basename(argv[0])} failed (exit {done.returncode}):\n"
            + (done.stdout + done.stderr).strip()[-2000:]
        )


def _initdb(props: dict[str, Any]) -> None:
    home, pgdata, run_as = props["home"], props["pgdata"], props.get("runAs")
    os.makedirs(home, mode=0o700, exist_ok=True)
    _own(home, run_as, 0o700)
    pwfile = os.path.join(home, "initdb.pw")
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(props["password"] + "\n")
        _own(pwfile, run_as, 0o600)
        _run(
            [
                os.path.join(props["bindir"], "initdb"),
                f"--pgdata={pgdata}",
                f"--username={props['user']}",
                f"--pwfile={pwfile}",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
            ],
            run_as,
            home,
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pwfile)
    database = props["database"].replace('"', '""')
    _run(
        [os.path.join(props["bindir"], "postgres"), "--single", "-D", pgdata, "postgres"],
        run_as,
        home,
        stdin=f'CREATE DATABASE "{database}";\n',
    )


def _server_pid(pgdata: str) -> int | None:
    """The pid of a postmaster still running on `pgdata`, from its postmaster.pid."""
    try:
        with open(os.path.join(pgdata, "postmaster.pid")) as f:
            pid = int(f.readline().strip())
    except (OSError, ValueError):
        return None
    return pid if start_ticks(pid) is not None else None


def _set_password(olds: dict[str, Any], news: dict[str, Any]) -> None:
    """Set the role's new password on the running server, connecting with the old one."""
    import psycopg
    from psycopg import sql

    try:
        conn = psycopg.connect(
            host=olds["host"],
            port=int(olds["port"]),
            user=olds["user"],
            password=olds["password"],
            dbname=olds["database"],
            connect_timeout=5,
            autocommit=True,
        )
    except psycopg.OperationalError as err:
        raise RuntimeError(
            f"bluegreen:databasePassword changed, but the database at {olds['host']}:"
            f"{olds['port']} did not take the old one ({str(err).strip()}): start it with the "
            "old password (`pulumi up -s data`), then change the password"
        ) from None
    with conn:
        verifier = conn.pgconn.encrypt_password(
            news["password"].encode(), news["user"].encode(), b"scram-sha-256"
        )
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(news["user"]), sql.Literal(verifier.decode())
            )
        )


class ClusterProvider(ResourceProvider):
    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        pgdata = props["pgdata"]
        if not os.path.exists(os.path.join(pgdata, "PG_VERSION")):
            if os.path.exists(pgdata) and os.listdir(pgdata):
                raise RuntimeError(
                    f"{pgdata} is not empty and holds no PostgreSQL cluster: move it away "
                    "(nothing was changed)"
                )
            _initdb(props)
        return CreateResult(
            id_=f"pgcluster:{pgdata}", outs={**props, "systemId": system_id(pgdata)}
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in _REPLACE_ON if olds.get(k) != news.get(k)]
        if not os.path.exists(os.path.join(news["pgdata"], "PG_VERSION")):
            replaces.append("systemId")  # gone from disk: `pulumi up` makes it again
        changes = bool(replaces) or any(
            olds.get(k) != v for k, v in news.items() if k not in ("systemId", "__provider")
        )
        return DiffResult(changes=changes, replaces=replaces, delete_before_replace=True)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        if olds.get("password") != news.get("password"):
            _set_password(olds, news)
        return UpdateResult(outs={**news, "systemId": system_id(news["pgdata"])})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        pgdata = props["pgdata"]
        for _ in range(100):  # the server stops first (it depends on this); wait for its exit
            if _server_pid(pgdata) is None:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(
                f"PostgreSQL still runs on {pgdata} (pid {_server_pid(pgdata)}): stop it, then "
                "run the destroy again (nothing was deleted)"
            )
        shutil.rmtree(pgdata, ignore_errors=True)
        if props.get("ownHome"):
            shutil.rmtree(props["home"], ignore_errors=True)


class Cluster(Resource, module="local", name="PostgresCluster"):
    """A PostgreSQL data directory, made once with `initdb`."""

    systemId: pulumi.Output[str]

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(ClusterProvider(), name, {**props, "systemId": None}, opts)
