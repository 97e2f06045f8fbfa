"""A throwaway PostgreSQL server on loopback, for tests of the shared intent store.

`initdb` into a temporary directory and a `postgres` listening on 127.0.0.1 at a port below the
ephemeral range, with a password-protected role: the store is tested the way edges on several
hosts reach it, over TCP with a DSN. The server runs as the `postgres` system user when the
tests run as root (it refuses to run as root), carries the suite's leak marker, and is stopped
however the tests end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator

from tests.support import leaks
from tests.support.sandbox import free_ports

USER = "queue"


def bindir() -> str | None:
    """The newest installed server's binaries, or None without one."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    return os.path.dirname(found[-1]) if found else None


def _version(path: str) -> tuple[int, ...]:
    part = path.split("/")[4]
    return tuple(int(p) for p in part.split(".") if p.isdigit())


@contextlib.contextmanager
def server() -> Iterator[str]:
    """Run a server for the block; yield a DSN (with password) to its `postgres` database."""
    bins = bindir()
    if bins is None:
        raise RuntimeError("no PostgreSQL server installed (/usr/lib/postgresql/*/bin/initdb)")
    # Not under pytest's tmp_path: its parents are 0700 root, which the postgres user cannot
    # traverse.
    root = tempfile.mkdtemp(prefix="bluegreen-pg-")
    data, sockets, log = (os.path.join(root, n) for n in ("data", "sockets", "log"))
    password = secrets.token_hex(12)
    as_user: dict = {}
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    env = {
        "PATH": bins + ":/usr/bin:/bin",
        "LANG": "C.UTF-8",
        leaks.MARKER: os.environ.get(leaks.MARKER, ""),  # the leak check finds it by this
    }
    proc: subprocess.Popen | None = None
    try:
        os.mkdir(sockets)
        with open(os.path.join(root, "pw"), "w") as f:
            f.write(password + "\n")
        if as_user:
            for path in (root, sockets, os.path.join(root, "pw")):
                os.chown(path, as_user["user"], as_user["group"])
        subprocess.run(
            [
                f"{bins}/initdb",
                f"--pgdata={data}",
                f"--username={USER}",
                f"--pwfile={root}/pw",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ],
            env=env,
            cwd=root,
            check=True,
            capture_output=True,
            **as_user,
        )
        [port] = free_ports(1)
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    f"{bins}/postgres",
                    "-D",
                    data,
                    "-k",
                    sockets,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    # Durability across power loss is not what these tests check; speed is.
                    "-c",
                    "fsync=off",
                ],
                env=env,
                cwd=root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **as_user,
            )
        dsn = f"postgresql://{USER}:{password}@127.0.0.1:{port}/postgres"
        _wait_ready(dsn, proc, log)
        yield dsn
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(dsn: str, proc: subprocess.Popen, log: str, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(dsn, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                with open(log, errors="replace") as f:
                    raise RuntimeError(f"postgres did not start:\n{f.read()[-2000:]}") from None
            time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    """Fast shutdown (what `pg_ctl stop -m fast` sends), then kill its whole session."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # backends of a postmaster that would not stop
    proc.wait(timeout=10)


def database(dsn: str) -> str:
    """A fresh, empty database on the server of `dsn`: a DSN to it."""
    import psycopg

    name = "t_" + secrets.token_hex(6)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return dsn.rsplit("/", 1)[0] + "/" + name
