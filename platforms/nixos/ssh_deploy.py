"""The SSH transport of a NixOS deploy (host.py's providers call `deploy`): the rendered file
and the bundle copied in one `ssh` that unpacks a tar from stdin into a staging directory and
renames each file into place, then `<bluegreen:nixosRebuild> switch` in another. Over the same
transport: whether a host answers at all (`reachable`, before a flip of several edge nodes), and
one shell command (`remote`, the writer lease's stamp).

A host's secrets (`secretFiles`: the data node's password, an arm's DSN) go first, in a tar of
their own, as 0600 files into `SECRETS_DIR` (0700, root's), unpacked into a staging directory
there and renamed into place: never under /etc/nixos, which a flake's rebuild copies whole into
the world-readable Nix store. The modules hand them to their services as systemd credentials by
path. They are no part of the digest (which is not secret); a change of one runs the host's
`onSecretChange` command after the switch.

The SSH private key is written to a 0600 file in a private temporary directory only for the
duration of the ssh calls (`key_file`), and never logged. Host keys are accepted on first
contact into `<runDir>/known_hosts` and checked on every later one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

REMOTE_DIR = "/etc/nixos/bluegreen"
SECRETS_DIR = "/var/lib/bluegreen/secrets"
"""Where a host's secret files live: root's only, outside /etc/nixos and the Nix store."""
_SECRET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_TIMEOUT_S = 1800  # a first switch may build the app's closure on the host
CONNECT_TIMEOUT_S = 15
REACH_TIMEOUT_S = 3
"""How long `reachable` waits for a host: it asks before a flip changes anything, preview too."""


class DeployError(RuntimeError):
    """A host could not be brought to its configuration; the message says what it answered."""


@dataclass(frozen=True)
class Target:
    """Where one rendered file goes."""

    host: str
    user: str
    port: int
    known_hosts: str
    """`<runDir>/known_hosts`: the host keys this stack has accepted."""
    remote_dir: str = REMOTE_DIR


def ssh_command(
    target: Target, key_path: str, remote: str, connect_timeout: int = CONNECT_TIMEOUT_S
) -> list[str]:
    """The ssh command line that runs `remote` (one shell command) on the target."""
    if any(c.isspace() or c == '"' for c in target.known_hosts + key_path):
        # ssh splits UserKnownHostsFile on whitespace: such a path would silently mean two files.
        raise DeployError(
            f"the ssh files {target.known_hosts!r} and {key_path!r} must have no spaces or quotes "
            "in their paths; choose a bluegreen:runDir without them"
        )
    return [
        "ssh",
        "-i",
        key_path,
        "-p",
        str(int(target.port)),
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        f"UserKnownHostsFile={target.known_hosts}",
        # Never prompt (there is nobody to answer), and offer this key only, not an agent's.
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"ConnectTimeout={int(connect_timeout)}",
        f"{target.user}@{target.host}",
        remote,
    ]


def copy_script(remote_dir: str) -> str:
    """Shell run on the host: unpack the tar on stdin into `remote_dir`, one rename per file."""
    d = shlex.quote(remote_dir)
    return (
        f'set -eu; umask 022; d={d}; mkdir -p "$d"; '
        't=$(mktemp -d "$d/.incoming.XXXXXX"); trap \'rm -rf "$t"\' EXIT; '
        'tar -x -f - -C "$t"; cd "$t"; '
        "find . -type f | while IFS= read -r f; do "
        'mkdir -p "$d/$(dirname "$f")"; mv -f "$f" "$d/$f"; done'
    )


def secrets_script(secrets_dir: str) -> str:
    """Shell run on the host: unpack the tar of secrets on stdin into `secrets_dir` (0700),
    one rename per file, nothing readable by anyone but root meanwhile."""
    d = shlex.quote(secrets_dir)
    return (
        f'set -eu; umask 077; d={d}; mkdir -p "$d"; chmod 0700 "$d"; '
        't=$(mktemp -d "$d/.incoming.XXXXXX"); trap \'rm -rf "$t"\' EXIT; '
        'tar -x -f - -C "$t"; cd "$t"; for f in *; do mv -f "$f" "$d/$f"; done'
    )


def deploy_commands(target: Target, key_path: str, rebuild: str) -> list[list[str]]:
    """The two commands of one deploy: the copy (reads `tarball()` on stdin), then the switch."""
    return [
        ssh_command(target, key_path, copy_script(target.remote_dir)),
        ssh_command(target, key_path, f"{shlex.quote(rebuild)} switch"),
    ]


def files_of(props: Mapping[str, Any]) -> dict[str, str]:
    """Every file a deploy writes but the secrets, by its path relative to the remote dir."""
    return {**props["bundle"], props["fileName"]: props["config"]}


def secrets_of(props: Mapping[str, Any]) -> dict[str, str]:
    """The host's secret files (`secretFiles`), by their names in `SECRETS_DIR`."""
    found = dict(props.get("secretFiles") or {})
    for name in found:
        if not _SECRET_NAME.fullmatch(name):
            raise DeployError(f"refusing the secret file name {name!r}: {_SECRET_NAME.pattern}")
    return found


def after_switch(props: Mapping[str, Any], other: Mapping[str, Any] | None) -> str | None:
    """`onSecretChange` when the secrets of `props` are new against `other`'s (None: a first
    deploy), else None: what takes a new secret in (a service that reads it once, say)."""
    new = secrets_of(props)
    if new and (other is None or secrets_of(other) != new):
        return props.get("onSecretChange") or None
    return None


def digest(files: Mapping[str, str]) -> str:
    """sha256 over the files' names and texts: equal digests mean nothing to deploy."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(json.dumps([name, files[name]]).encode())
    return h.hexdigest()


def tarball(files: Mapping[str, str], mode: int = 0o644) -> bytes:
    """The files as a tar archive; fixed owner, mode and time, so equal files give equal bytes."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            data = files[name].encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def run(argv: list[str], stdin: bytes | None) -> subprocess.CompletedProcess:
    """Run one ssh command (tests replace this to see the commands without a host)."""
    if shutil.which(argv[0]) is None:
        raise DeployError(
            f"{argv[0]} is not installed: the nixos platform deploys over ssh "
            "(scripts/bootstrap installs openssh-client)"
        )
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=_TIMEOUT_S)


@contextmanager
def key_file(key: str) -> Iterator[str]:
    """The private key in a 0600 file that exists only while the block runs."""
    folder = tempfile.mkdtemp(prefix="bluegreen-ssh-")  # 0700: nobody else can even list it
    path = os.path.join(folder, "id")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key if key.endswith("\n") else key + "\n")  # ssh rejects a key without it
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _target(props: Mapping[str, Any]) -> Target:
    return Target(
        host=props["host"],
        user=props["user"],
        port=int(props["port"]),
        known_hosts=props["knownHosts"],
        remote_dir=props["remoteDir"],
    )


def _tail(data: bytes, lines: int = 15) -> str:
    text = data.decode(errors="replace").strip()
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def deploy(
    props: Mapping[str, Any],
    files: Mapping[str, str],
    secrets: Mapping[str, str] | None = None,
    then: str | None = None,
) -> None:
    """Copy `secrets` (default: the host's) and `files` to the host, switch it to them, then run
    `then` there (`after_switch`)."""
    target = _target(props)
    os.makedirs(os.path.dirname(target.known_hosts), exist_ok=True)
    where = f"{target.user}@{target.host}:{target.port}"
    secrets = secrets_of(props) if secrets is None else secrets
    with key_file(props["sshKey"]) as key:
        copy, switch = deploy_commands(target, key, props["rebuild"])
        if secrets:
            done = run(
                ssh_command(target, key, secrets_script(SECRETS_DIR)), tarball(secrets, 0o600)
            )
            if done.returncode != 0:
                raise DeployError(
                    f"copying the secret files to {where}:{SECRETS_DIR} failed (ssh exit "
                    f"{done.returncode}); nothing was switched:\n{_tail(done.stderr)}"
                )
        done = run(copy, tarball(files))
        if done.returncode != 0:
            raise DeployError(
                f"copying {props['fileName']} to {where}:{target.remote_dir} failed "
                f"(ssh exit {done.returncode}); nothing was switched:\n{_tail(done.stderr)}"
            )
        done = run(switch, None)
        if done.returncode != 0:
            raise DeployError(
                f"`{props['rebuild']} switch` failed on {where} (exit {done.returncode}); "
                f"the host keeps its current system:\n{_tail(done.stderr + done.stdout)}"
            )
        if then:
            done = run(ssh_command(target, key, then), None)
            if done.returncode != 0:
                raise DeployError(
                    f"{where} switched, but `{then}` failed there (exit {done.returncode}), so "
                    f"it may not use its new secret yet:\n{_tail(done.stderr + done.stdout)}"
                )


def remote(
    props: Mapping[str, Any], command: str, connect_timeout: int = CONNECT_TIMEOUT_S
) -> str | None:
    """Run one shell command on the host of `props` (a deploy's connection: host, user, port,
    knownHosts, remoteDir, sshKey): None when it succeeded, else what ssh or the command said."""
    target = _target(props)
    os.makedirs(os.path.dirname(target.known_hosts), exist_ok=True)
    with key_file(props["sshKey"]) as key:
        done = run(ssh_command(target, key, command, connect_timeout), None)
    if done.returncode == 0:
        return None
    return _tail(done.stderr, 3) if done.stderr.strip() else f"ssh exit {done.returncode}"


def reachable(props: Mapping[str, Any]) -> str | None:
    """None when the host runs `true` over ssh within `REACH_TIMEOUT_S`, else what ssh said."""
    try:
        return remote(props, "true", REACH_TIMEOUT_S)
    except (DeployError, OSError, subprocess.SubprocessError) as err:
        return str(err)
