"""A throwaway copy of the project with its own file backend, ports and run directories.

The end-to-end tests and the benches drive the real `pulumi` CLI against it, with real processes
on loopback, without touching the stacks `scripts/demo` leaves running. `teardown` destroys every
stack and reports any process or port left behind. With `data=True` the project has a data stack
too (PostgreSQL on a port of its own, a password of its own), deployed before the arms.
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bluegreen import probe
from cutover.workspace import ROOT, Workspace, toolchain_env
from platforms.local.edge_files import served
from platforms.local.local_data import data_home
from platforms.local.process import port_in_use, start_ticks

COPIED = (
    "Pulumi.yaml",
    "__main__.py",
    "bluegreen",
    "components",
    "platforms",
    "app",
    "policy",
    "nixos",  # bluegreen/nginx.py reads the nginx text it shares with the NixOS module
    "scripts",  # the README's command blocks start with `source scripts/env`
    "requirements.txt",
)


def free_ports(n: int) -> list[int]:
    """`n` distinct free ports below the kernel's ephemeral range: a port picked inside it can be
    taken as the source port of any outgoing connection (a probe, pulumi's own gRPC) before the
    test binds it, which failed a CI run once."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral_low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    # Each pytest-xdist worker picks from a range of its own: two workers' tests never pick the
    # same port in the moment between picking it and binding it.
    low, high = 20000, ephemeral_low
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    if worker.startswith("gw") and count > 1:
        share = (high - low) // count
        low += int(worker[2:]) * share
        high = low + share
    rng = random.Random()
    picked: list[int] = []
    while len(picked) < n:
        port = rng.randrange(low, high)
        if port not in picked and not port_in_use("127.0.0.1", port):
            picked.append(port)
    return picked


@dataclass
class LocalProject:
    dir: str
    ws: Workspace
    ports: dict[str, int]

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['live']}/"

    def arm_url(self, color: str) -> str:
        return f"http://127.0.0.1:{self.ports[color]}"

    def write_stack(self, stack: str, values: dict[str, object]) -> None:
        lines = ["config:"] + [f"  bluegreen:{k}: {_yaml(v)}" for k, v in values.items()]
        with open(os.path.join(self.dir, f"Pulumi.{stack}.yaml"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def stack_file(self, stack: str) -> str:
        with open(os.path.join(self.dir, f"Pulumi.{stack}.yaml")) as f:
            return f.read()

    @contextlib.contextmanager
    def bluegreen(
        self, *args: str, env: dict[str, str] | None = None
    ) -> Iterator[subprocess.Popen]:
        """The installed `bluegreen` command, run in this project as a person runs it, in a
        session of its own (a terminal's Ctrl-C is `os.killpg(p.pid, SIGINT)`); killed with
        everything it started if still running when the block ends."""
        env = {**self.ws.env, **(env or {})}
        proc = subprocess.Popen(
            [shutil.which("bluegreen", path=env["PATH"]), *args],
            cwd=self.dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()

    def colors(self, n: int = 20, url: str | None = None) -> list[str | None]:
        """Which arm answered each of n requests through the edge (None for a failed request)."""
        return [probe.request(url or self.edge_url).color for _ in range(n)]

    @property
    def has_data(self) -> bool:
        return os.path.exists(os.path.join(self.dir, "Pulumi.data.yaml"))

    def up_all(self, active: str = "blue") -> None:
        """Deploy the data stack if there is one, both arms (at once: they are independent
        stacks), then the edge."""
        if self.has_data:
            self.ws.up("data")
        with ThreadPoolExecutor(max_workers=2) as pool:
            for done in [pool.submit(self.ws.up, color) for color in ("blue", "green")]:
                done.result()
        self.ws.config_set("live", "bluegreen:activeColor", active)
        self.ws.up("live")

    def pids(self) -> list[tuple[int, int | None]]:
        """Every process our run directories know about: the arms' services, nginx, Knot,
        Prometheus, the queue service and PostgreSQL, by their pid files (ours: "pid ticks";
        a daemon's: its pid first, as PostgreSQL's own postmaster.pid, whose next line is its data
        directory)."""
        found = []
        for path in glob.glob(os.path.join(self.dir, ".bluegreen", "**", "*.pid"), recursive=True):
            try:
                parts = open(path).read().split()
                pid = int(parts[0])
            except (OSError, ValueError, IndexError):
                continue
            ticks = parts[1] if len(parts) > 1 else ""
            found.append((pid, int(ticks) if ticks.isdigit() else None))
        return found

    def stop(self) -> list[str]:
        """Stop every process the stacks started, without Pulumi, and return what was left
        behind (processes, ports): the end of a test that is not about destroy (that one is
        `teardown`'s, and tests/e2e/test_flip.py holds it to leaving nothing behind)."""
        self._signal(signal.SIGTERM)
        return self._gone()

    def _signal(self, signum: int) -> None:
        """Signal each of our processes and its group (each runs in a session of its own)."""
        for pid, ticks in self.pids():
            if self._ours(pid, ticks):
                with contextlib.suppress(OSError):
                    os.killpg(pid, signum)
                with contextlib.suppress(OSError):
                    os.kill(pid, signum)

    def teardown(self) -> list[str]:
        """Destroy every stack; return what was left behind (processes, ports) after that."""
        for stack in ("live", "green", "blue", "data"):
            if os.path.exists(os.path.join(self.dir, f"Pulumi.{stack}.yaml")):
                self.ws.destroy(stack, check=False)
        return self._gone()

    def _ours(self, pid: int, ticks: int | None) -> bool:
        """Alive and ours: a pid file with a start time must match it; a daemon's (nginx, Knot)
        names a process whose command line holds this project's directory."""
        if ticks is not None:
            return _alive(pid, ticks)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return self.dir.encode() in f.read() and _alive(pid, None)
        except OSError:
            return False

    def _gone(self) -> list[str]:
        """Wait for our processes to end and our ports to close; what is left after 5 s is
        reported, and its processes killed, so the next test never meets them."""
        deadline = time.monotonic() + 5
        left: list[str] = []
        while time.monotonic() < deadline:
            left = [f"process {pid}" for pid, ticks in self.pids() if self._ours(pid, ticks)]
            left += [f"port {p}" for p in self.ports.values() if port_in_use("127.0.0.1", p)]
            if not left:
                break
            time.sleep(0.05)
        self._signal(signal.SIGKILL)
        # A local edge run as root keeps what its workers read outside the run dir, and so does
        # the data stack's PostgreSQL (its cluster).
        for run_dir in glob.glob(os.path.join(self.dir, ".bluegreen", "*")):
            for kept in (served(run_dir), data_home(run_dir)):
                if os.path.isdir(run_dir) and kept != run_dir:
                    shutil.rmtree(kept, ignore_errors=True)
        return left


def _alive(pid: int, ticks: int | None) -> bool:
    now = start_ticks(pid)
    return now is not None and (ticks is None or now == ticks)


def _yaml(value: object) -> str:
    if isinstance(value, str) and re.match(r"^[A-Za-z][A-Za-z0-9._/-]*$", value):
        return value
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def make_project(
    tmp_path, policy: bool = False, root: str = ROOT, data: bool = False
) -> LocalProject:
    """The copy is made from `root` (another checkout of the project, e.g. an older commit for a
    bench's baseline); the venv and the Pulumi CLI are always this checkout's. `data`: with a
    data stack at revision 0001_items (port `ports["data"]`, a password of its own)."""
    project = os.path.join(str(tmp_path), "bluegreen")
    os.makedirs(project)
    for name in COPIED:
        src = os.path.join(root, name)
        if os.path.isdir(src):
            shutil.copytree(
                src,
                os.path.join(project, name),
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        elif os.path.exists(src):
            shutil.copy(src, project)
    os.symlink(os.path.join(ROOT, ".venv"), os.path.join(project, ".venv"))
    state = os.path.join(str(tmp_path), "state")
    os.makedirs(state)
    env = toolchain_env()
    env["PULUMI_BACKEND_URL"] = "file://" + state
    env["PULUMI_CONFIG_PASSPHRASE"] = "e2e"
    env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
    blue, green, live, prometheus, queue = free_ports(5)
    lp = LocalProject(
        dir=project,
        ws=Workspace(project_dir=project, env=env, policy_pack="policy" if policy else None),
        ports={
            "blue": blue,
            "green": green,
            "live": live,
            "prometheus": prometheus,
            "queue": queue,
        },
    )
    lp.write_stack("blue", {"role": "arm", "color": "blue", "version": "v1", "port": blue})
    lp.write_stack("green", {"role": "arm", "color": "green", "version": "v2", "port": green})
    lp.write_stack(
        "live",
        {
            "role": "edge",
            "activeColor": "blue",
            "edgePort": live,
            "prometheusPort": prometheus,
            "maintenanceQueuePort": queue,
        },
    )
    for stack in ("blue", "green", "live"):
        lp.ws.ensure_stack(stack)
    if data:
        [lp.ports["data"]] = free_ports(1)
        values = {"role": "data", "schemaRevision": "0001_items", "databasePort": lp.ports["data"]}
        lp.write_stack("data", values)
        lp.ws.ensure_stack("data")
        password = secrets.token_urlsafe(18)
        lp.ws.config_set_secret("data", "bluegreen:databasePassword", password)
    return lp


def kill_at_once(pid_file: str) -> None:
    """SIGKILL the process named in `pid_file` and its children together (an nginx master and
    its workers, an arm and its server), as when their host goes."""
    with open(pid_file) as f:
        pid = int(f.read().split()[0])
    children = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    for victim in [pid, *children]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
