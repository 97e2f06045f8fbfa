"""What the nixos tests share (tests/integration/test_nixos*.py): nix-instantiate's environment
and evaluation of node files, and a real sshd on three loopback addresses standing in for hosts."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from platforms.nixos import bundle
from tests.support.nixos_cases import ROOT, module_path
from tests.support.sandbox import free_ports

EVAL = os.path.join(ROOT, "nixos", "tests", "eval-node.nix")


STATE = "bluegreen-edge/switch.json"


LEASE_DIR = "/var/lib/bluegreen-edge/lease"


@pytest.fixture(scope="module")
def nix_env(tmp_path_factory) -> dict[str, str]:
    """Environment for nix-instantiate as root on a fresh machine: no daemon, no /nix needed.

    `--store dummy://` (see `nix`) keeps evaluation from opening a store at all; the state and
    config directories point into a temp dir so that nothing under /nix or ~ is read or created.
    """
    if shutil.which("nix-instantiate") is None:
        pytest.fail("nix-instantiate is not installed: run scripts/bootstrap (Debian's nix-bin)")
    state = tmp_path_factory.mktemp("nix-state")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIX_")}
    env.update(
        NIX_STATE_DIR=str(state / "state"),
        NIX_LOG_DIR=str(state / "log"),
        NIX_CONF_DIR=str(state / "conf"),
        HOME=str(state),
        NIX_PATH="",
    )
    return env


def nix(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["nix-instantiate", "--store", "dummy://", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def evaluate(env: dict[str, str], node: str) -> dict:
    """eval-node.nix on one node file: its options, what it defines, its failed assertions."""
    done = nix(env, "--eval", "--strict", "--json", EVAL, "--arg", "node", node)
    assert done.returncode == 0, f"evaluating {node} failed:\n{done.stderr}"
    return json.loads(done.stdout)


def evaluation_error(env: dict[str, str], node: str) -> str:
    done = nix(env, "--eval", "--strict", "--json", EVAL, "--arg", "node", node)
    assert done.returncode != 0, f"{node} evaluated although it should not:\n{done.stdout}"
    return done.stderr


def on_host(tmp_path, file_name: str, text: str) -> str:
    """Lay out a rendered file with its bundle as the deploy does in /etc/nixos/bluegreen."""
    for rel, content in {**bundle.files(), file_name: text}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return str(tmp_path / file_name)


def node_file(tmp_path, module: str, body: str) -> str:
    """A hand-written node config importing one of the repo's modules."""
    path = tmp_path / "node.nix"
    path.write_text(f"{{ ... }}: {{ imports = [ {module_path(module)} ]; {body} }}\n")
    return str(path)


SSHD = "/usr/sbin/sshd"
HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


def free_port() -> int:
    return free_ports(1)[0]


@pytest.fixture
def sshd(tmp_path):
    """An sshd on 127.0.0.1 (and .2, .3: `HOSTS`) that accepts only the test's key; stopped even
    when the test fails."""
    if not os.path.exists(SSHD) or shutil.which("ssh") is None:
        pytest.fail("sshd or ssh is missing: run scripts/bootstrap (openssh-server, -client)")
    d = tmp_path / "ssh"
    d.mkdir(mode=0o700)
    for key in ("host_key", "client_key"):
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"bluegreen-{key}",
                "-f",
                str(d / key),
            ],
            check=True,
        )
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = free_port()
    user = getpass.getuser()
    config = d / "sshd_config"
    # Three loopback addresses stand in for three hosts (every 127.0.0.0/8 address is loopback).
    listen = "".join(f"ListenAddress {a}\n" for a in HOSTS)
    config.write_text(
        f"""\
{listen}Port {port}
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
PidFile {d}/sshd.pid
AllowUsers {user}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
# The keys live under the test's temp dir, whose parents sshd's ownership checks would refuse.
StrictModes no
LogLevel VERBOSE
"""
    )
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    log = open(d / "sshd.log", "wb")
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config), "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"sshd exited with {proc.returncode}:\n{(d / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"sshd did not listen:\n{(d / 'sshd.log').read_text()}")
                time.sleep(0.05)
        yield {"port": port, "user": user, "key": (d / "client_key").read_text(), "dir": d}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def app_package_script(env: dict[str, str]) -> str:
    """The start script nixos/pkgs/bluegreen-app.nix writes, with stand-ins for python3 (whose
    path names the packages it was built with) and writeShellScriptBin."""
    expr = (
        f"(import {ROOT}/nixos/pkgs/bluegreen-app.nix {{ "
        'python3 = { outPath = "/python3"; withPackages = f: { outPath = "/python3-with-" + '
        'builtins.concatStringsSep "+" (f { prometheus-client = "prometheus-client"; '
        'psycopg = "psycopg"; }); }; }; '
        "writeShellScriptBin = name: text: { inherit name text; }; }).text"
    )
    done = nix(env, "--eval", "--strict", "--json", "-E", expr)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
