"""The embedded default: real processes and a real nginx on loopback, no cloud account needed."""

from __future__ import annotations

import os
import sys

import pulumi

from bluegreen import nginx, probe
from bluegreen.config import ConfigError, Settings
from platforms.base import ArmEndpoint, ArmView, EdgeEndpoint
from platforms.local.nginx_edge import NginxEdge, listens_on
from platforms.local.process import Process, port_in_use

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "app", "server.py")


class LocalPlatform:
    def preflight(self, settings: Settings) -> None:
        # A taken port must fail the preview, not the update: an arm replaced onto a taken port
        # would already have lost its running process by the time its new one fails to bind.
        host = settings.bind_address
        if settings.role == "arm":
            port, key = settings.port, "bluegreen:port"
            ours = (
                probe.readiness(f"http://{host}:{port}", settings.health_path, timeout=1).color
                == settings.color
            )
        else:
            port, key = settings.edge_port, "bluegreen:edgePort"
            ours = listens_on(settings.run_dir) == f"{host}:{port}"
        if port_in_use(host, port) and not ours:
            raise ConfigError(
                [
                    f"{key} {port} is already in use on {host} by another process; "
                    "choose a free port (nothing was changed)"
                ]
            )

    def arm(self, name: str, parent: pulumi.Resource, settings: Settings) -> ArmEndpoint:
        assert settings.color and settings.version and settings.port
        host, port = settings.bind_address, settings.port
        endpoint = f"http://{host}:{port}"
        argv = [
            sys.executable,
            "-u",
            APP,
            f"--color={settings.color}",
            f"--version={settings.version}",
            f"--host={host}",
            f"--port={port}",
            f"--health-path={settings.health_path}",
            *settings.app_args,
        ]
        service = Process(
            f"{name}-service",
            {
                "name": f"{settings.app_name}-{settings.color}",
                "argv": argv,
                "cwd": settings.run_dir,
                "env": {"PYTHONUNBUFFERED": "1"},
                "bind": host,
                "port": port,
                "portKey": "bluegreen:port",
                "healthUrl": endpoint + settings.health_path,
                "logPath": os.path.join(settings.run_dir, f"{settings.color}.log"),
                "pidPath": os.path.join(settings.run_dir, f"{settings.color}.pid"),
            },
            pulumi.ResourceOptions(parent=parent),
        )
        return ArmEndpoint(
            endpoint=service.pid.apply(lambda _: endpoint),
            nodes=service.pid.apply(lambda _: [f"{host}:{port}"]),
        )

    def edge(
        self,
        name: str,
        parent: pulumi.Resource,
        settings: Settings,
        arms: dict[str, ArmView],
        weights: dict[str, int],
    ) -> EdgeEndpoint:
        listen = f"{settings.bind_address}:{settings.edge_port}"
        servers = pulumi.Output.all(*[arms[c].nodes for c in arms]).apply(
            lambda node_lists: [
                {"address": s.address, "color": s.color, "weight": s.weight}
                for s in nginx.servers_for(dict(zip(arms, node_lists, strict=True)), weights)
            ]
        )
        switch = NginxEdge(
            f"{name}-nginx",
            {
                "app": settings.app_name,
                "runDir": settings.run_dir,
                "listen": listen,
                "activeColor": settings.active_color,
                "weights": weights,
                "servers": servers,
                "arms": {
                    c: {"endpoint": a.endpoint, "version": a.version} for c, a in arms.items()
                },
                "healthPath": settings.health_path,
                "confirmTimeout": settings.flip_timeout_s,
                "sticky": settings.sticky,
                "maintenance": {
                    "enabled": settings.maintenance.enabled,
                    "status": settings.maintenance.status,
                    "retryAfter": settings.maintenance.retry_after_s,
                    "banner": settings.maintenance.banner,
                },
            },
            pulumi.ResourceOptions(parent=parent),
        )
        return EdgeEndpoint(
            url=pulumi.Output.from_input(f"http://{listen}/"),
            generation=switch.generation,
        )
