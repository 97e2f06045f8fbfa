"""The local edge's files: nginx's run dir (its prefix: the config, the pid, the logs, the probe
token) and its served dir (`bluegreen.nginx_conf.layout.served_dir`: the switch state and the
lease stamps its workers read). The provider (nginx_edge.py) and the tests and benches that run
an edge by hand read and write them through these."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import time

from bluegreen import nginx
from bluegreen.nginx_conf.layout import LEASE_DIR, SERVED_ROOT, served_dir, worker_user
from platforms.local.process import daemon_pid

PROBE_TOKEN_FILE = "probe.token"
"""The edge's probe token (`nginx.probe_token`), owner-only in the run directory, for bluegreen's
own processes on this host (the queue service's `--probe-token-file`)."""


def paths(run_dir: str) -> dict[str, str]:
    return {
        "conf": os.path.join(run_dir, "nginx.conf"),
        "next": os.path.join(run_dir, "nginx.conf.next"),
        "prev": os.path.join(run_dir, "nginx.conf.prev"),
        "state": os.path.join(served(run_dir), "switch.json"),
        "js": os.path.join(run_dir, "switch.js"),
        "pid": os.path.join(run_dir, "nginx.pid"),
        "error_log": os.path.join(run_dir, "error.log"),
        "token": os.path.join(run_dir, PROBE_TOKEN_FILE),
    }


def write_token(run_dir: str, token: str) -> None:
    """Write the probe token where this host's bluegreen processes read it: created 0600 (never
    readable by others, not even for a moment), replaced atomically."""
    path = paths(run_dir)["token"]
    try:
        with open(path) as f:
            if f.read().strip() == token:
                return
    except OSError:
        pass
    fd = os.open(path + ".next", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older .next, created by anyone, keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(path + ".next", path)


def read_token(run_dir: str) -> str | None:
    try:
        with open(paths(run_dir)["token"]) as f:
            return f.read().strip()
    except OSError:
        return None


def master_pid(run_dir: str) -> int | None:
    """The pid of *our* nginx master: the pid file's process, if it runs our config."""
    where = paths(run_dir)
    return daemon_pid(where["pid"], where["conf"])


def listens_on(run_dir: str) -> str | None:
    """The host:port our running nginx (if any) listens on, read from the config it serves."""
    if master_pid(run_dir) is None:
        return None
    try:
        with open(paths(run_dir)["conf"]) as f:
            for line in f:
                words = line.split()
                if words[:1] == ["listen"]:
                    return words[1].rstrip(";")
    except OSError:
        pass
    return None


def read_state(run_dir: str) -> dict | None:
    """The switch state nginx reads per request, or None."""
    try:
        with open(paths(run_dir)["state"]) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def served(run_dir: str) -> str:
    """`served_dir` of the nginx this process runs: what its workers read and write."""
    return served_dir(run_dir, os.geteuid() == 0)


def make_served(run_dir: str) -> str:
    """Lay out `served` (with `tmp`, in which nginx makes its temp dirs, owned by the workers)
    and return it. Outside the run dir it is root's and its workers' group's only, and the run
    dir's switch.json points at the state in it, for whoever reads it there."""
    where = served(run_dir)
    parts = (where, os.path.join(where, "tmp"), os.path.join(where, LEASE_DIR))
    if where == run_dir:
        for path in parts:
            os.makedirs(path, exist_ok=True)
        return where
    os.makedirs(SERVED_ROOT, mode=0o755, exist_ok=True)
    group = grp.getgrnam(worker_user()[1]).gr_gid
    for path in parts:
        os.makedirs(path, exist_ok=True)
        os.chown(path, 0, group)
        os.chmod(path, 0o750)
    link, target = os.path.join(run_dir, "switch.json"), os.path.join(where, "switch.json")
    if not (os.path.islink(link) and os.readlink(link) == target):
        os.makedirs(run_dir, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(link + ".next")
        os.symlink(target, link + ".next")
        os.replace(link + ".next", link)
    return where


def write_state(run_dir: str, state: dict) -> None:
    """Replace the switch state atomically: a request reads the old file or the new one."""
    where = make_served(run_dir)
    path = os.path.join(where, "switch.json")
    with open(path + ".next", "w") as f:
        if where != run_dir:  # the workers' user reads it; its directory keeps others out
            os.fchmod(f.fileno(), 0o644)
        json.dump({**state, "writtenAt": time.time()}, f, sort_keys=True)
    os.replace(path + ".next", path)
    if state.get("lease") and not state["lease"].get("shared"):
        stamp(run_dir, int(state["lease"]["fence"]))


def stamp(run_dir: str, fence: int) -> None:
    """Stamp when the edge began serving `fence` (switch.js serves it as the lease's `since`):
    just after the state is in place, never before, and only for a new fence, so a weight or
    maintenance change keeps the holder's writers running. The other fences' stamps go: a fence
    served again (by hand) starts its handover afresh."""
    folder = os.path.join(served(run_dir), LEASE_DIR)
    name = nginx.LEASE_STAMP.format(fence=fence)
    try:
        with open(os.path.join(folder, name), "x"):
            pass
    except FileExistsError:
        return
    for other in os.listdir(folder):
        if other != name:
            os.remove(os.path.join(folder, other))


def write_if_changed(path: str, text: str) -> None:
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except OSError:
        pass
    with open(path + ".next", "w") as f:
        f.write(text)
    os.replace(path + ".next", path)


def tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).strip() or "(empty)"
    except OSError:
        return "(no error log)"
