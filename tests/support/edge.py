"""A real nginx edge with two arms, started from the renderer without Pulumi."""

from __future__ import annotations

import dataclasses
import http.client
import os
import subprocess
import sys
import time
from collections import Counter

from bluegreen import nginx, nginx_conf, probe
from bluegreen.config import Backpressure, Cache, Shadow, weights_for
from platforms.local.edge_files import write_state
from platforms.local.nginx_binary import js_module
from tests.support.mocks import maintenance
from tests.support.sandbox import free_ports

APP = os.path.join(os.path.dirname(__file__), "..", "..", "app", "server.py")


VERSIONS = {"blue": "v1", "green": "v2"}


TOKEN = "5ec7e7" * 6
"""The edge's probe token in these tests: bluegreen's own requests send it."""


OWN = {probe.PROBE_HEADER: TOKEN}


@dataclasses.dataclass
class Edge:
    run: str
    port: int
    arms: dict[str, int]
    conf_generation: str
    features: dict

    def state(self, active="blue", canary=None, **fields) -> dict:
        values = {
            "conf_generation": self.conf_generation,
            "active": active,
            "weights": weights_for(active, canary),
            "sticky": False,
            "versions": VERSIONS,
            "maintenance": maintenance(enabled=False),
            "shadow": self.features["shadow"],
            "backpressure": self.features["backpressure"],
            "limits_until": None,
            "lease": nginx.Lease(fence=1, since=0.0, handover=5),
            "probe_token": TOKEN,
        }
        return nginx.switch_state(**{**values, **fields})

    def point(self, active="blue", canary=None, **fields) -> dict:
        state = self.state(active, canary, **fields)
        write_state(self.run, state)
        return state

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)

    def get(self, path="/", method="GET", headers=None, conn=None):
        own = conn is None
        conn = conn or self.connection()
        try:
            conn.request(
                method, path, body=b"{}" if method != "GET" else None, headers=headers or {}
            )
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            if own:
                conn.close()

    def workers(self) -> set[int]:
        master = int(open(os.path.join(self.run, "nginx.pid")).read())
        out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
        return {int(p) for p in out.stdout.split()}

    def served(self, color: str) -> float:
        """Requests an arm counted (its own /metrics), shadow ones included."""
        _, _, body = self.get_direct(color, "/metrics")
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith("bluegreen_http_requests_total{")
        )

    def get_direct(self, color: str, path: str):
        conn = http.client.HTTPConnection("127.0.0.1", self.arms[color], timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()


def start_edge(tmp_path, **features) -> tuple[Edge, list[subprocess.Popen]]:
    features = {
        "cache": Cache(False, 64, ()),
        "shadow": Shadow(0, False),
        "backpressure": Backpressure(0, 0, 0, 1, "always", 300),
        **features,
    }
    blue, green, edge_port = free_ports(3)
    arms = {"blue": blue, "green": green}
    procs = []
    for color, port in arms.items():
        argv = [sys.executable, APP, f"--color={color}", f"--version={VERSIONS[color]}"]
        procs.append(subprocess.Popen([*argv, f"--port={port}"], stdout=subprocess.DEVNULL))
    run = str(tmp_path)
    for sub in ("tmp", "logs"):
        os.makedirs(os.path.join(run, sub), exist_ok=True)
    text = nginx_conf.render_local(
        app="shop",
        run_dir=run,
        listen=f"127.0.0.1:{edge_port}",
        nodes={c: [f"127.0.0.1:{p}"] for c, p in arms.items()},
        js_module=js_module(),
        as_root=os.geteuid() == 0,
        **features,
    )
    with open(os.path.join(run, "nginx.conf"), "w") as f:
        f.write(text)
    with open(os.path.join(run, "switch.js"), "w") as f:
        f.write(nginx.SWITCH_JS)
    conf_gen = nginx_conf.conf_generation(text)
    edge = Edge(run, edge_port, arms, conf_gen, features)
    edge.point("blue")
    subprocess.run(["nginx", "-p", run, "-c", os.path.join(run, "nginx.conf")], check=True)
    for color in arms:
        probe.wait_until(
            f"http://127.0.0.1:{arms[color]}/healthz/ready", lambda a: a.status == 200, 10
        )
    return edge, procs


def colors(edge: Edge, n: int, headers=None) -> Counter:
    conn = edge.connection()
    seen = Counter(
        edge.get(headers=headers, conn=conn)[1].get("x-bluegreen-color") for _ in range(n)
    )
    conn.close()
    return seen


def start_slow_request(edge: Edge) -> http.client.HTTPConnection:
    """A request whose body is still arriving: nginx holds its connection for it."""
    conn = edge.connection()
    conn.putrequest("POST", "/")
    conn.putheader("Content-Length", "100")
    conn.endheaders()
    conn.send(b"x")
    time.sleep(0.2)
    return conn
