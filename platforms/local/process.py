"""A long-running local process as a Pulumi resource (an arm's service, the edge's Prometheus).

The process must outlive the `pulumi` run that started it, so it gets its own session and a pid
file. Its identity is its pid *and* its start time: `delete` signals the process only when both
still match, so a recycled pid never gets a stranger killed. Its `files` (path: text) are written
before it starts; a change to them alone rewrites them and sends the process `reloadSignal`
(SIGHUP by default) instead of restarting it. Its `healthUrl` is an http:// URL any answer of which
means it serves, or tcp://host:port for a server that speaks no HTTP (PostgreSQL), ready once it
accepts a connection; `stopSignal` (SIGTERM by default) is what stops it (SIGINT is PostgreSQL's
fast shutdown), SIGKILL after `stopGraceSeconds` (5).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from bluegreen import probe

# Inputs whose change means a new process (same port, so the old one goes first).
_REPLACE_ON = ("argv", "env", "cwd", "bind", "port", "healthUrl")
_OUTPUTS = ("pid", "startTicks")


def start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    # The command (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has already exited
        return None
    return int(fields[19])


def is_running(pid: int | None, ticks: int | None) -> bool:
    return bool(pid) and ticks is not None and start_ticks(int(pid)) == int(ticks)


def daemon_pid(pid_file: str, config: str) -> int | None:
    """The pid in a daemon's pid file, if that process is alive and was started with `config`:
    a stale pid file, or a pid reused by another program, is not ours to signal."""
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if config in cmdline and start_ticks(pid) is not None else None


def running_from(pid_file: str) -> bool:
    """Whether the process a Process resource's pid file names is still running."""
    try:
        with open(pid_file) as f:
            pid, ticks = (int(v) for v in f.read().split())
    except (OSError, ValueError):
        return False
    return is_running(pid, ticks)


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on host:port. SO_REUSEADDR, as nginx and the service use it, so
    that connections lingering in TIME_WAIT after a server stopped do not count as "in use"."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def stop(pid: int, ticks: int, grace_s: float = 5.0, signum: int = signal.SIGTERM) -> None:
    """Signal the process group we started (SIGTERM unless `signum`), SIGKILL after `grace_s`;
    only if still ours."""
    if not is_running(pid, ticks):
        return
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not is_running(pid, ticks):
            return
        time.sleep(0.02)
    if is_running(pid, ticks):
        os.killpg(pid, signal.SIGKILL)


def _write_files(files: dict[str, str] | None) -> None:
    # Owner-only: a file may hold a secret (the queue store's DSN), and only the process reads it.
    for path, text in (files or {}).items():
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = f"{path}.tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)  # the process never reads half a file


def _answers(url: str) -> bool:
    """Whether the process serves: any HTTP answer at an http:// URL (readiness is the gate's
    call), or a connection accepted at tcp://host:port."""
    if not url.startswith("tcp://"):
        return probe.request(url, timeout=1.0).status is not None
    host, _, port = url.removeprefix("tcp://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=1.0).close()
    except OSError:
        return False
    return True


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).strip()
    except OSError:
        return "(no log)"


def _stop_signal(props: dict[str, Any]) -> int:
    return getattr(signal, props.get("stopSignal") or "SIGTERM")


class ProcessProvider(ResourceProvider):
    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        host, port = props["bind"], int(props["port"])
        if port_in_use(host, port):
            raise RuntimeError(
                f"{props['portKey']} {port} is already in use on {host} by another process; "
                "choose a free port in the stack config (nothing was started)"
            )
        os.makedirs(os.path.dirname(props["logPath"]), exist_ok=True)
        _write_files(props.get("files"))
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
        env.update(props.get("env") or {})
        with open(props["logPath"], "ab") as log:
            proc = subprocess.Popen(
                props["argv"],
                cwd=props["cwd"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlive `pulumi up`, and own a process group to stop
                close_fds=True,
            )
        ticks = start_ticks(proc.pid)
        with open(props["pidPath"], "w") as f:
            f.write(f"{proc.pid} {ticks}\n")

        deadline = time.monotonic() + float(props.get("readyTimeout", 15))
        serving = False
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            serving = _answers(props["healthUrl"])
            if serving:
                break
            time.sleep(0.05)
        if not serving:
            stop(proc.pid, ticks or 0, signum=_stop_signal(props))
            why = (
                f"exited with code {proc.returncode}"
                if proc.poll() is not None
                else "did not answer in time"
            )
            raise RuntimeError(
                f"{props['name']} {why} at {props['healthUrl']}; "
                f"its log {props['logPath']} ends with:\n" + _tail(props["logPath"])
            )
        return CreateResult(
            id_=f"{props['name']}:{proc.pid}",
            outs={**props, "pid": proc.pid, "startTicks": ticks},
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in _REPLACE_ON if olds.get(k) != news.get(k)]
        if not is_running(olds.get("pid"), olds.get("startTicks")):
            replaces.append("pid")  # it died: `pulumi up` brings it back
        changes = bool(replaces) or any(
            olds.get(k) != v for k, v in news.items() if k not in _OUTPUTS and k != "__provider"
        )
        return DiffResult(changes=changes, replaces=replaces, delete_before_replace=True)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # Only inputs that do not restart the running process reach here: names, paths of logs,
        # and its files, which it is told to read again.
        if news.get("files") != olds.get("files"):
            _write_files(news.get("files"))
            if is_running(olds["pid"], olds["startTicks"]):
                os.kill(olds["pid"], getattr(signal, news.get("reloadSignal") or "SIGHUP"))
        return UpdateResult(outs={**news, "pid": olds["pid"], "startTicks": olds["startTicks"]})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not is_running(props.get("pid"), props.get("startTicks")):
            return ReadResult(id_=None, outs={})  # gone: a refresh drops it and `up` recreates it
        return ReadResult(id_=id_, outs=props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        grace_s = float(props.get("stopGraceSeconds") or 5)
        stop(int(props["pid"]), int(props["startTicks"]), grace_s, signum=_stop_signal(props))
        for _ in range(100):  # the arm's port must be free before a replacement starts
            if not port_in_use(props["bind"], int(props["port"])):
                break
            time.sleep(0.05)
        try:
            os.unlink(props["pidPath"])
        except FileNotFoundError:
            pass


class Process(Resource, module="local", name="Process"):
    """A process started by Pulumi that keeps running after the update."""

    pid: pulumi.Output[int]

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(ProcessProvider(), name, {**props, **dict.fromkeys(_OUTPUTS)}, opts)
