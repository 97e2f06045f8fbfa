"""The embedded default: real processes and a real nginx on loopback, no cloud account needed."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from bluegreen import nginx, probe
from bluegreen.config import ArmSettings, ConfigError, Dns, EdgeSettings
from bluegreen.reader import VERSION, Reader
from platforms.base import ArmEndpoint, ArmPlatform, Arms, EdgeEndpoint, EdgePlatform
from platforms.local.nginx_edge import NginxEdge, listens_on
from platforms.local.process import Process, port_in_use

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "app", "server.py")

_SIMULATE = {
    "ready-status": r"[1-5][0-9][0-9]",
    "delay-ms": r"[0-9]{1,5}(\.[0-9]+)?",
    "error-rate": r"0(\.[0-9]+)?|1(\.0+)?",
    # Report a version other than the pinned one, as an arm restarted by hand on another build.
    "serve-version": VERSION.pattern,
}


def _bind_address(read: Reader) -> str:
    """bluegreen:bindAddress: every local process and the local edge listen on loopback only."""
    value = read.declared("bindAddress")
    try:
        if not ipaddress.ip_address(value).is_loopback:
            read.problem("bindAddress", value, "a loopback address on the local platform")
    except ValueError:
        read.problem("bindAddress", value, "an IP address such as 127.0.0.1")
    return value


def _simulate(read: Reader) -> dict[str, str]:
    """bluegreen:simulate, `ready-status=500,delay-ms=40,error-rate=0.02` (any subset)."""
    raw = read.optional("simulate") or ""
    faults: dict[str, str] = {}
    for item in filter(None, raw.split(",")):
        name, _, value = item.strip().partition("=")
        if name not in _SIMULATE or not re.fullmatch(_SIMULATE[name], value):
            read.problem(
                "simulate",
                raw,
                "comma-separated ready-status=<HTTP status>, delay-ms=<ms>, "
                "error-rate=<0..1>, serve-version=<version>",
            )
            return {}
        faults[name] = value
    return faults


def _refuse_taken(host: str, port: int, key: str, ours: bool) -> None:
    # A taken port must fail the preview, not the update: an arm replaced onto a taken port
    # would already have lost its running process by the time its new one fails to bind.
    if port_in_use(host, port) and not ours:
        raise ConfigError(
            [
                f"bluegreen:{key} {port} is already in use on {host} by another process; "
                "choose a free port (nothing was changed)"
            ]
        )


@dataclass(frozen=True)
class LocalArm(ArmPlatform):
    """The arm's service: app/server.py as a process on loopback."""

    bind_address: str
    port: int
    """The port the arm's service listens on: its direct endpoint."""
    simulate: Mapping[str, str]
    """Faults the reference service injects on purpose (tests, demos)."""

    @classmethod
    def from_config(cls, read: Reader) -> LocalArm:
        where = f' for arm stack "{read.stack}": the local platform needs a port'
        raw = read.required("port", where)
        return cls(
            bind_address=_bind_address(read),
            port=read.port("port", raw) if raw else 0,
            simulate=_simulate(read),
        )

    @property
    def app_args(self) -> list[str]:
        flags = {"serve-version": "version"}
        return [f"--{flags.get(k, k)}={v}" for k, v in sorted(self.simulate.items())]

    def preflight(self, s: ArmSettings) -> None:
        answer = probe.readiness(f"http://{self.bind_address}:{self.port}", s.health_path, 1)
        _refuse_taken(self.bind_address, self.port, "port", ours=answer.color == s.color)

    def arm(self, name: str, parent: pulumi.Resource, s: ArmSettings) -> ArmEndpoint:
        host, port = self.bind_address, self.port
        endpoint = f"http://{host}:{port}"
        argv = [
            sys.executable,
            "-u",
            APP,
            f"--color={s.color}",
            f"--version={s.version}",
            f"--host={host}",
            f"--port={port}",
            f"--health-path={s.health_path}",
            *self.app_args,
        ]
        service = Process(
            f"{name}-service",
            {
                "name": f"{s.app_name}-{s.color}",
                "argv": argv,
                "cwd": s.run_dir,
                "env": {"PYTHONUNBUFFERED": "1"},
                "bind": host,
                "port": port,
                "portKey": "bluegreen:port",
                "healthUrl": endpoint + s.health_path,
                "logPath": os.path.join(s.run_dir, f"{s.color}.log"),
                "pidPath": os.path.join(s.run_dir, f"{s.color}.pid"),
            },
            pulumi.ResourceOptions(parent=parent),
        )
        return ArmEndpoint(
            endpoint=service.pid.apply(lambda _: endpoint),
            nodes=service.pid.apply(lambda _: [f"{host}:{port}"]),
        )


@dataclass(frozen=True)
class LocalEdge(EdgePlatform):
    """The edge: nginx on loopback, and Knot DNS for RFC 2136 records."""

    bind_address: str
    port: int
    """The port nginx listens on for users' traffic."""

    @classmethod
    def from_config(cls, read: Reader) -> LocalEdge:
        return cls(bind_address=_bind_address(read), port=read.port("edgePort"))

    @property
    def listen(self) -> str:
        return f"{self.bind_address}:{self.port}"

    def preflight(self, s: EdgeSettings) -> None:
        ours = listens_on(s.run_dir) == self.listen
        _refuse_taken(self.bind_address, self.port, "edgePort", ours)

    def edge(self, name: str, parent: pulumi.Resource, s: EdgeSettings, arms: Arms) -> EdgeEndpoint:
        weights = s.weights
        servers = pulumi.Output.all(*[arms[c].nodes for c in arms]).apply(
            lambda node_lists: [
                {"address": srv.address, "color": srv.color, "weight": srv.weight}
                for srv in nginx.servers_for(dict(zip(arms, node_lists, strict=True)), weights)
            ]
        )
        m = s.maintenance
        switch = NginxEdge(
            f"{name}-nginx",
            {
                "app": s.app_name,
                "runDir": s.run_dir,
                "listen": self.listen,
                "activeColor": s.active_color,
                "weights": weights,
                "servers": servers,
                "arms": {
                    c: {"endpoint": a.endpoint, "version": a.version} for c, a in arms.items()
                },
                "healthPath": s.health_path,
                "confirmTimeout": s.flip_timeout_s,
                "sticky": s.sticky,
                "maintenance": {
                    "enabled": m.enabled,
                    "status": m.status,
                    "retryAfter": m.retry_after_s,
                    "banner": m.banner,
                },
            },
            pulumi.ResourceOptions(parent=parent),
        )
        return EdgeEndpoint(
            url=pulumi.Output.from_input(f"http://{self.listen}/"),
            generation=switch.generation,
        )

    def dns_server(
        self, name: str, parent: pulumi.Resource, s: EdgeSettings, d: Dns, secret: pulumi.Output
    ) -> list[pulumi.Resource]:
        """Knot DNS on loopback at bluegreen:dnsServer, authoritative for the zone."""
        from platforms.local.dns_server import DnsServer

        return [
            DnsServer(
                f"{name}-dns-server",
                {
                    "zone": d.zone,
                    "listen": d.server,
                    "keyName": d.tsig_key_name,
                    "algorithm": d.tsig_algorithm,
                    "secret": secret,
                    "runDir": s.run_dir,
                },
                pulumi.ResourceOptions(parent=parent),
            )
        ]


ARM = LocalArm
EDGE = LocalEdge
