"""Several edge nodes on nixos (bluegreen:edges) deployed over a real ssh: the live stack's program
declares one edge host per site (under the mocks, after its preflight), and each host's provider
runs as the engine runs it, all at once, then the writer lease's stamp once they all confirmed,
against one sshd on three loopback addresses standing in for three nodes
(tests/integration/test_nixos_ssh.py's). The stand-in `nixos-rebuild` records which node it ran
on and activates the file copied there; an edge on each node's address answers with what is
active, as the node's nginx would, so each switch is confirmed through its own node, and each
node reads the others' lease from them. The program's read of the stack's last outputs is
answered with what the last update applied. Only NixOS building the system is left out: the
files the nodes got are evaluated with nix-instantiate.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import types
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pulumi
import pytest
from pulumi.runtime import rpc

from bluegreen import nginx
from bluegreen.config import ConfigError
from bluegreen.config_parts.edge_sites import MOVING_ENV
from platforms.base import ArmView
from platforms.nixos import host, lease_release
from platforms.stack_outputs import READ_OUTPUTS
from tests.support.mocks import stack
from tests.support.nixos_cases import NODES
from tests.support.nixos_env import HOSTS, LEASE_DIR, STATE, evaluate, free_port

SITES = dict(zip(("site-a", "site-b", "site-c"), HOSTS, strict=True))


class Node(http.server.BaseHTTPRequestHandler):
    """A node's edge: its colour, generation and writer lease, from the file last switched to."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        path = self.server.root / self.server.server_address[0] / "active.nix"
        if not path.exists():
            self.send_response(503)
            self.end_headers()
            return
        text = path.read_text()
        color = re.search(r'activeColor = "([a-z]+)";', text).group(1)
        fence = int(re.search(r"fence = ([0-9]+);", text).group(1))
        holder = re.search(r'holder = (null|"[a-z]+");', text)  # a shared lease's
        self.send_response(200)
        self.send_header("X-Bluegreen-Color", color)
        generation = re.search(r'generation = "([0-9a-f]+)";', text).group(1)
        self.send_header("X-Bluegreen-Edge-Generation", generation)
        self.end_headers()
        held = json.loads(holder.group(1)) if holder else color
        lease = {"holder": held, "fence": fence, "since": 0, "handover": 5}
        self.wfile.write(json.dumps(lease if self.path == nginx.LEASE_PATH else {}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def nodes(tmp_path):
    """Where each node keeps its files (`nodes/<address>`), the stand-in nixos-rebuild, and an
    edge on every node's address at one port."""
    root = tmp_path / "nodes"
    script = tmp_path / "bin" / "nixos-rebuild"
    script.parent.mkdir()
    script.write_text(
        '#!/bin/sh\nset -eu\nwhat="$*"\nset -- $SSH_CONNECTION\n'  # $3: the address reached
        f'printf "%s %s\\n" "$what" "$3" >> {tmp_path}/switches\n'
        f'cp {root}/"$3"/etc/nixos/bluegreen/shop-edge.nix {root}/"$3"/active.nix\n'
    )
    script.chmod(0o755)
    port = free_port()
    servers = []
    for address in HOSTS:
        (root / address).mkdir(parents=True)
        server = http.server.ThreadingHTTPServer((address, port), Node)
        server.root = root
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)

    def switches() -> dict[str, int]:
        """How many times each node was switched."""
        done = tmp_path / "switches"
        lines = done.read_text().splitlines() if done.exists() else []
        return {site: lines.count(f"switch {a}") for site, a in SITES.items()}

    def active(site: str) -> str:
        """The file the node was last switched to."""
        return (root / SITES[site] / "active.nix").read_text()

    def lease(site: str) -> tuple[str | None, int]:
        """The writer lease the node serves (its edge's /_bluegreen/lease)."""
        url = f"http://{SITES[site]}:{port}{nginx.LEASE_PATH}"
        doc = json.loads(urllib.request.urlopen(url, timeout=2).read())
        return doc["holder"], doc["fence"]

    def stamps(site: str) -> list[str]:
        """The lease stamps on the node."""
        folder = root / SITES[site] / "lease"
        return sorted(os.listdir(folder)) if folder.exists() else []

    yield types.SimpleNamespace(
        root=root,
        rebuild=str(script),
        port=port,
        switches=switches,
        active=active,
        lease=lease,
        stamps=stamps,
    )
    for server in servers:
        server.shutdown()
        server.server_close()


class Recorder(pulumi.runtime.Mocks):
    def __init__(self, outputs: dict) -> None:
        self.created: dict[str, dict] = {}
        self.outputs = outputs

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.created[args.name] = {
            k: rpc.unwrap_rpc_secret(v) if rpc.is_rpc_secret(v) else v
            for k, v in args.inputs.items()
        }
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == READ_OUTPUTS:  # the stack's own last outputs
            return {"name": args.args["name"], "outputs": self.outputs}
        return {}


class Live:
    """The live stack: its program run under the mocks (its preflight, then the edge), then each
    edge host it declares applied as the engine applies it (create, or diff and update), all at
    once, then the lease's stamp, which waits for them all."""

    def __init__(self, ssh, nodes, tmp_path, monkeypatch) -> None:
        self.sshd, self.nodes, self.tmp_path, self.env = ssh, nodes, tmp_path, monkeypatch
        self.state: dict[str, dict] = {}
        self.stamp: dict | None = None
        self.outputs: dict = {}
        self.provider = host.EdgeHostProvider()

    def declare(self, active: str, sites: dict[str, str], moving=None) -> dict[str, dict]:
        if moving is None:
            self.env.delenv(MOVING_ENV, raising=False)
        else:
            self.env.setenv(MOVING_ENV, json.dumps(moving))
        mocks = Recorder(self.outputs)
        pulumi.runtime.set_mocks(mocks, project="bluegreen", stack="live", preview=False)
        pulumi.runtime.set_all_config({"bluegreen:sshKey": self.sshd["key"]}, ["bluegreen:sshKey"])
        loaded = stack(
            "live",
            role="edge",
            platform="nixos",
            activeColor=active,
            edges=json.dumps(sites),
            sshUser=self.sshd["user"],
            sshPort=str(self.sshd["port"]),
            nixosRebuild=self.nodes.rebuild,
            edgePort=str(self.nodes.port),
            runDir=str(self.tmp_path / "run"),
        )
        arms = {
            c: ArmView(c, f"http://{n[0]}", "v1", n, pulumi.Output.from_input({}))
            for c, n in NODES.items()
        }
        try:
            loaded.platform.preflight(loaded.settings)
            edge = loaded.platform.edge
            pulumi.runtime.test(lambda: edge("live", None, loaded.settings, arms).url)()
        finally:
            pulumi.runtime.set_all_config({}, [])
        # Every node is this machine: each gets a directory of its own for /etc/nixos/bluegreen
        # and for its lease stamps.
        declared = {}
        for name, props in mocks.created.items():
            if "nodes" in props:  # the lease's stamp
                nodes = {
                    site: {**n, "leaseDir": str(self.nodes.root / n["host"] / "lease")}
                    for site, n in props["nodes"].items()
                }
                props = {**props, "nodes": nodes}
            else:
                remote = str(self.nodes.root / props["host"] / "etc/nixos/bluegreen")
                props = {**props, "remoteDir": remote}
            declared[name] = props
        return declared

    def up(self, active: str, sites: dict[str, str], moving=None, release=True) -> set[str]:
        """Declare, then apply what changed; the names of the hosts that changed. Without
        `release`, stop before the lease's stamp (`release()` applies it)."""
        declared = self.declare(active, sites, moving)
        self.stamp_props = declared.pop("live-lease")

        def apply(name: str) -> str | None:
            props, olds = declared[name], self.state.get(name)
            if olds is None:
                self.state[name] = self.provider.create(props).outs
            elif self.provider.diff(name, olds, props).changes:
                self.state[name] = self.provider.update(name, olds, props).outs
            else:
                return None
            return name

        with ThreadPoolExecutor(max_workers=len(declared)) as pool:
            changed = {n for n in pool.map(apply, declared) if n}
        if release:
            self.release()
        return changed

    def release(self) -> None:
        """The stamp, with the lease each host recorded; then the stack's outputs."""
        by_host = {props["host"]: props["lease"] for props in self.state.values()}
        props = dict(self.stamp_props)
        props["leases"] = {site: by_host[n["host"]] for site, n in props["nodes"].items()}
        stamper = lease_release.EdgeLeaseStampProvider()
        if self.stamp is None:
            self.stamp = stamper.create(props).outs
        elif stamper.diff("lease", self.stamp, props).changes:
            self.stamp = stamper.update("lease", self.stamp, props).outs
        sites = {n["host"]: site for site, n in props["nodes"].items()}
        self.outputs.clear()
        self.outputs["edges"] = {
            sites[p["host"]]: {
                "activeColor": p["edge"]["activeColor"],
                "weights": p["edge"]["weights"],
            }
            for p in self.state.values()
            if p["host"] in sites
        }

    def fences(self) -> dict[str, tuple[str, int]]:
        """The writer lease each node's state records, by site."""
        by_host = {props["host"]: props["lease"] for props in self.state.values()}
        return {
            site: (by_host[a]["color"], by_host[a]["fence"])
            for site, a in SITES.items()
            if a in by_host
        }


A, B, C = ("live-127.0.0.1", "live-127.0.0.2-site-b", "live-127.0.0.3-site-c")


def test_every_edge_node_is_switched_confirmed_and_moved_in_its_wave(
    sshd, nodes, nix_env, tmp_path, monkeypatch
):
    live = Live(sshd, nodes, tmp_path, monkeypatch)
    two = {k: SITES[k] for k in ("site-a", "site-b")}

    # Two edge nodes: each gets the rendered file and the bundle, is switched once, and
    # confirmed through itself.
    assert live.up("green", two) == {A, B}
    assert nodes.switches() == {"site-a": 1, "site-b": 1, "site-c": 0}
    for name, address in ((A, SITES["site-a"]), (B, SITES["site-b"])):
        remote = nodes.root / address / "etc/nixos/bluegreen"
        assert (remote / "shop-edge.nix").read_text() == live.state[name]["config"]
        assert (remote / "nixos/modules/edge-node/default.nix").exists()

    # A flip changes every node, with one writer lease on all of them.
    assert live.up("blue", two) == {A, B}
    assert nodes.switches() == {"site-a": 2, "site-b": 2, "site-c": 0}
    assert all('activeColor = "blue";' in nodes.active(s) for s in two)
    assert live.fences() == {"site-a": ("blue", 2), "site-b": ("blue", 2)}

    # A third site joins, serving what the others serve, their lease included; the others are
    # not switched again.
    live.up("blue", SITES)
    assert nodes.switches() == {"site-a": 2, "site-b": 2, "site-c": 1}
    assert live.fences()["site-c"] == ("blue", 2)
    assert {s: nodes.stamps(s) for s in SITES} == dict.fromkeys(SITES, ["lease-2"])

    # A flip in waves: the first wave moves site-a only. Every node, the held ones included
    # (switched for the lease alone, their traffic unchanged), serves it held by nobody at one
    # new fence, stamped on all of them.
    assert live.up("green", SITES, moving=["site-a"]) == {A, B, C}
    assert nodes.switches() == {"site-a": 3, "site-b": 3, "site-c": 2}
    assert 'activeColor = "green";' in nodes.active("site-a")
    assert all('activeColor = "blue";' in nodes.active(s) for s in ("site-b", "site-c"))
    assert live.state[B]["edge"]["activeColor"] == "blue"  # what the stack exports for it
    assert {s: nodes.lease(s) for s in SITES} == dict.fromkeys(SITES, (None, 3))
    assert {s: nodes.stamps(s) for s in SITES} == dict.fromkeys(SITES, ["lease-3"])

    # The second wave moves site-b; site-c, still held, keeps that lease and is not switched.
    assert live.up("green", SITES, moving=["site-a", "site-b"]) == {B}
    assert nodes.switches() == {"site-a": 3, "site-b": 4, "site-c": 2}
    assert {s: nodes.lease(s) for s in SITES} == dict.fromkeys(SITES, (None, 3))

    # The last wave (or a bare `pulumi up`) moves the rest: every node serves green at one new
    # fence, whose stamp exists on no node until all of them confirmed, then on all of them.
    assert live.up("green", SITES, release=False) == {A, B, C}
    assert nodes.switches() == {"site-a": 4, "site-b": 5, "site-c": 3}
    assert {s: nodes.lease(s) for s in SITES} == dict.fromkeys(SITES, ("green", 4))
    assert {s: nodes.stamps(s) for s in SITES} == dict.fromkeys(SITES, ["lease-3"])
    live.release()
    assert {s: nodes.stamps(s) for s in SITES} == dict.fromkeys(SITES, ["lease-4"])
    assert live.fences() == {s: ("green", 4) for s in SITES}

    # What each node got evaluates as NixOS would build it: the same switch state but for the
    # Prometheus the first node alone runs, and an activation that leaves the shared lease
    # unstamped.
    for site, address in SITES.items():
        result = evaluate(nix_env, str(nodes.root / address / "etc/nixos/bluegreen/shop-edge.nix"))
        assert result["failedAssertions"] == [], site
        state = json.loads(result["config"]["environment"]["etc"][STATE]["text"])
        assert state["active"] == "green", site
        assert {k: state["lease"][k] for k in ("color", "fence", "shared")} == {
            "color": "green",
            "fence": 4,
            "shared": True,
        }, site
        runs = "prometheus" in result["config"]["services"]
        assert runs is (site == "site-a"), site
    activation = result["config"]["system"]["activationScripts"]["bluegreen-edge-lease"]["text"]
    assert f"mkdir -p -m 0755 {lease_release.LEASE_DIR}" in activation  # where the stamp goes
    folder = tmp_path / "activated"
    subprocess.run(["sh", "-euc", activation.replace(LEASE_DIR, str(folder))], check=True)
    assert folder.is_dir() and os.listdir(folder) == []


def answers(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def without(sshd: dict, address: str) -> None:
    """Restart the nodes' sshd listening on every address but `address`: that node's sshd can no
    longer be reached (the others' can)."""
    config = sshd["dir"] / "sshd_config"
    config.write_text(config.read_text().replace(f"ListenAddress {address}\n", ""))
    pid = int((sshd["dir"] / "sshd.pid").read_text())
    os.kill(pid, signal.SIGHUP)  # sshd re-executes itself with the config
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not answers(address, sshd["port"]) and answers(HOSTS[0], sshd["port"]):
            return
        time.sleep(0.05)
    raise AssertionError(f"sshd still answers on {address}, or no longer on {HOSTS[0]}")


def test_a_flip_is_refused_while_a_node_cannot_be_reached_and_nothing_is_switched(
    sshd, nodes, tmp_path, monkeypatch
):
    live = Live(sshd, nodes, tmp_path, monkeypatch)
    # The stack's last update deployed all three, serving blue; site-c's sshd has gone since.
    blue = {"activeColor": "blue", "weights": {"blue": 100.0, "green": 0.0}}
    live.outputs["edges"] = dict.fromkeys(SITES, blue)
    without(sshd, SITES["site-c"])

    with pytest.raises(ConfigError) as err:
        live.up("green", SITES)
    (problem,) = err.value.problems
    assert problem.startswith(
        "bluegreen:activeColor green would move traffic, but the edge node site-c (127.0.0.3: "
    )
    assert problem.endswith(
        "cannot be reached over ssh: a flip moves every edge or none. Bring it back, or take it "
        "out of bluegreen:edges (nothing was changed)"
    )
    assert nodes.switches() == dict.fromkeys(SITES, 0)  # not even the nodes that answer

    # An update that moves no traffic asks no node, and goes ahead.
    live.declare("blue", SITES)
