"""Many NixOS hosts on one machine, for benches of the nixos platform: every node is a loopback
address (127.x.y.z), reached over a real SSH connection, with a stand-in for `nixos-rebuild`.

What is real: `pulumi up` and the nixos platform's deploy exactly as they run against NixOS
hosts (platforms/nixos/host.py: one `ssh` that unpacks the rendered file and the bundle into
/etc/nixos/bluegreen, one `ssh ... nixos-rebuild switch`, then the probe), Debian's sshd and ssh,
the reference app (app/server.py, from the bundle the deploy copied) on every arm node, and nginx
on the edge node, configured as the edge module configures it (bluegreen.nginx_conf.render_local and
switch_state, which the module reproduces; tests/unit/test_nixos.py checks that).

What stands in, and why:
- One sshd on 127.0.0.1 serves every node: sshd listens on at most 16 addresses, so a forwarder
  (`python -m bench.nixos_hosts forward`) listens on each node's address and connects to sshd
  *from* that address; sshd's ForceCommand wrapper reads the node from SSH_CONNECTION.
- Each node's filesystem is a directory: the wrapper runs the command the deploy sent with
  `/etc/nixos` replaced by `<root>/hosts/<node>/etc/nixos`, and with the stand-in first on PATH.
- `nixos-rebuild switch` (`python -m bench.nixos_hosts switch`, bench/nixos_rebuild.py) does what
  the modules would make systemd do, without building anything: for an arm file, (re)start the
  app at the rendered colour, version, port and health path, bound to the node's address (not
  0.0.0.0: the nodes share one machine), and only when those changed; for the edge file, write
  nginx's config from the rendered servers (reloading it, SIGHUP, only when that changed, as NixOS
  does) and the switch state from the pointer, weights and generation; for the file `pulumi
  destroy` leaves, stop what the file ran.

`LoopbackHosts` starts sshd and the forwarder and stops them, and every app and nginx the
stand-in started, in `stop()`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import glob
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

from bench.nixos_rebuild import REMOTE_ETC, running_unit, stop_process, switch

SSHD = "/usr/sbin/sshd"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LoopbackHosts:
    """sshd, the forwarder and the stand-in `nixos-rebuild` for the nodes `addresses`."""

    def __init__(self, root: str, addresses: list[str]) -> None:
        from tests.support.sandbox import free_ports

        self.root = root
        self.addresses = addresses
        self.user = getpass.getuser()
        self.sshd_port, self.ssh_port = free_ports(2)
        """sshd's own port on 127.0.0.1, and the port every node answers SSH on."""
        self.procs: list[subprocess.Popen] = []
        self.key = ""

    def _path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def start(self) -> None:
        os.makedirs(self._path("ssh"), mode=0o700, exist_ok=True)
        os.makedirs(self._path("bin"), exist_ok=True)
        os.makedirs(self._path("hosts"), exist_ok=True)
        for key in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self._path("ssh", key)],
                check=True,
            )
        with (
            open(self._path("ssh", "client_key.pub")) as f,
            open(self._path("ssh", "authorized_keys"), "w") as out,
        ):
            out.write(f.read())
        with open(self._path("ssh", "client_key")) as f:
            self.key = f.read()
        self._write_scripts()
        config = self._path("ssh", "sshd_config")
        with open(config, "w") as f:
            f.write(
                f"""\
ListenAddress 127.0.0.1
Port {self.sshd_port}
HostKey {self._path("ssh", "host_key")}
AuthorizedKeysFile {self._path("ssh", "authorized_keys")}
PidFile {self._path("ssh", "sshd.pid")}
AllowUsers {self.user}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
MaxStartups 200:30:400
ForceCommand {self._path("bin", "node-shell")}
LogLevel ERROR
"""
            )
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        log = open(self._path("ssh", "sshd.log"), "wb")
        self.procs.append(
            subprocess.Popen(
                [SSHD, "-D", "-e", "-f", config],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()
        with open(self._path("addresses"), "w") as f:
            f.write("\n".join(self.addresses) + "\n")
        self.procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.nixos_hosts",
                    "forward",
                    "--to",
                    str(self.sshd_port),
                    "--port",
                    str(self.ssh_port),
                    "--addresses",
                    self._path("addresses"),
                ],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
            )
        )
        _wait_listening("127.0.0.1", self.sshd_port, self.procs[0])
        for address in (self.addresses[0], self.addresses[-1]):
            _wait_listening(address, self.ssh_port, self.procs[1])

    def _write_scripts(self) -> None:
        hosts = shlex.quote(self._path("hosts"))
        bin_dir = shlex.quote(self._path("bin"))
        # sshd runs this instead of the command the client sent (SSH_ORIGINAL_COMMAND); the
        # forwarder connected from the node's address, the first field of SSH_CONNECTION.
        shell = f"""#!/bin/sh
node=${{SSH_CONNECTION%% *}}
root={hosts}/$node
mkdir -p "$root{REMOTE_ETC}" "$root/run"
cmd=$(printf '%s' "$SSH_ORIGINAL_COMMAND" | sed "s#{REMOTE_ETC}#$root{REMOTE_ETC}#g")
export PATH={bin_dir}:$PATH BLUEGREEN_NODE=$node BLUEGREEN_NODE_ROOT=$root
exec sh -c "$cmd"
"""
        # Its start and end go to run/rebuild.times on the node: what the stand-in costs.
        rebuild = f"""#!/bin/sh
t0=$(date +%s.%N)
cd {shlex.quote(ROOT)} && {shlex.quote(sys.executable)} -m bench.nixos_hosts switch "$@"
rc=$?
echo "$t0 $(date +%s.%N) $*" >> "$BLUEGREEN_NODE_ROOT/run/rebuild.times"
exit $rc
"""
        for name, text in (("node-shell", shell), ("nixos-rebuild", rebuild)):
            path = self._path("bin", name)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)

    def stop(self) -> list[str]:
        """Stop every app and nginx the stand-in started, then the forwarder and sshd; return
        what would not stop."""
        left = []
        for pid_file in glob.glob(self._path("hosts", "*", "run", "*.pid")):
            running = running_unit(pid_file)
            if running and not stop_process(running[0], self.root):
                left.append(f"process {running[0]}")
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.procs.clear()
        return left


def _wait_listening(host: str, port: int, proc: subprocess.Popen, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {host}:{port}") from None
            time.sleep(0.05)


# --- the forwarder ---------------------------------------------------------------------------


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _forward(addresses: list[str], port: int, sshd_port: int) -> None:
    def handler(address: str):
        async def handle(reader, writer):
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    "127.0.0.1", sshd_port, local_addr=(address, 0)
                )
            except OSError:
                writer.close()
                return
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))

        return handle

    servers = [await asyncio.start_server(handler(a), a, port) for a in addresses]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


def switch_seconds(root: str, node: str) -> list[float]:
    """How long each stand-in `nixos-rebuild` run on `node` took, in order."""
    try:
        with open(os.path.join(root, "hosts", node, "run", "rebuild.times")) as f:
            return [float(b) - float(a) for a, b, *_ in (line.split() for line in f if line)]
    except OSError:
        return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    fwd = sub.add_parser("forward", help="listen on each address, connect to sshd from it")
    fwd.add_argument("--to", type=int, required=True, help="sshd's port on 127.0.0.1")
    fwd.add_argument("--port", type=int, required=True)
    fwd.add_argument("--addresses", required=True, help="file with one address a line")
    sw = sub.add_parser("switch", help="the stand-in nixos-rebuild, run on a node over ssh")
    sw.add_argument("action")
    args, _ = parser.parse_known_args()
    if args.mode == "forward":
        with open(args.addresses) as f:
            addresses = [line.strip() for line in f if line.strip()]
        asyncio.run(_forward(addresses, args.port, args.to))
        return 0
    return switch(args.action)


if __name__ == "__main__":
    sys.exit(main())
