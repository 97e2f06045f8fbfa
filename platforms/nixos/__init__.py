"""NixOS hosts reached over SSH: each arm node runs the app as a systemd service, the edge node
runs nginx as the traffic switch (modules in nixos/modules, rendering in render.py, the deploy
in host.py).

An arm stack declares one `bluegreen:nixos:Host` per node of `bluegreen:nodes`; the live stack
declares one for `bluegreen:edgeNode`. A flip changes the edge's rendered file only, so only the
edge host is switched.
"""

from __future__ import annotations

import os

import pulumi

from bluegreen import nginx
from bluegreen.config import Settings
from platforms.base import ArmEndpoint, ArmView, EdgeEndpoint
from platforms.nixos import render
from platforms.nixos.host import REMOTE_DIR, NixosHost


def _connection(settings: Settings, host: str) -> dict:
    nx = settings.nixos
    assert nx is not None
    return {
        "host": host,
        "user": nx.ssh_user,
        "port": nx.ssh_port,
        "knownHosts": os.path.join(settings.run_dir, "known_hosts"),
        "remoteDir": REMOTE_DIR,
        "rebuild": nx.rebuild,
        # A secret Output: the engine keeps it encrypted in the state and masked in every diff.
        "sshKey": pulumi.Config("bluegreen").require_secret("sshKey"),
    }


class NixosPlatform:
    def preflight(self, settings: Settings) -> None:
        # bluegreen.platform_config has already refused missing or malformed nodes, users, ports
        # and commands, naming the key; whether a host answers is only known by deploying to it.
        return None

    def arm(self, name: str, parent: pulumi.Resource, settings: Settings) -> ArmEndpoint:
        nx = settings.nixos
        assert nx is not None and settings.color and settings.version
        hosts = []
        for node in nx.nodes:
            text = render.arm_node(
                stack=settings.stack,
                node=node,
                color=settings.color,
                version=settings.version,
                port=nx.app_port,
                health_path=settings.health_path,
            )
            address = render.host_port(node, nx.app_port)
            hosts.append(
                NixosHost(
                    f"{name}-{node}",
                    {
                        **_connection(settings, node),
                        "fileName": render.file_name(settings.app_name, settings.color),
                        "config": text,
                        "bundle": render.bundle(),
                        # The switch only counts once the node serves the new version.
                        "confirm": {
                            "url": f"http://{address}{settings.health_path}",
                            "headers": {
                                "x-bluegreen-color": settings.color,
                                "x-bluegreen-version": settings.version,
                            },
                            "timeoutSeconds": 60,
                        },
                    },
                    pulumi.ResourceOptions(parent=parent),
                )
            )
        nodes = [render.host_port(n, nx.app_port) for n in nx.nodes]
        endpoint = f"http://{nodes[0]}"
        deployed = pulumi.Output.all(*[h.digest for h in hosts])
        return ArmEndpoint(
            endpoint=deployed.apply(lambda _: endpoint),
            nodes=deployed.apply(lambda _: nodes),
        )

    def edge(
        self,
        name: str,
        parent: pulumi.Resource,
        settings: Settings,
        arms: dict[str, ArmView],
        weights: dict[str, int],
    ) -> EdgeEndpoint:
        nx = settings.nixos
        assert nx is not None and nx.edge_node and settings.active_color and settings.edge_port
        url = f"http://{render.host_port(nx.edge_node, settings.edge_port)}/"
        targets = sorted(c for c, w in weights.items() if w > 0)
        rendered = pulumi.Output.all(*[arms[c].nodes for c in arms]).apply(
            lambda node_lists: render.edge_node(
                stack=settings.stack,
                app=settings.app_name,
                active_color=settings.active_color,
                servers=nginx.servers_for(dict(zip(arms, node_lists, strict=True)), weights),
                port=settings.edge_port,
                sticky=settings.sticky,
                maintenance=settings.maintenance,
            )
        )
        generation = rendered.apply(lambda r: r.generation)
        expect = generation.apply(
            lambda gen: {
                "x-bluegreen-edge-generation": gen,
                # Through the edge, the colour that answers must be the new one (not a canary).
                **({"x-bluegreen-color": targets[0]} if len(targets) == 1 else {}),
            }
        )
        host = NixosHost(
            f"{name}-{nx.edge_node}",
            {
                **_connection(settings, nx.edge_node),
                "fileName": render.file_name(settings.app_name, "edge"),
                "config": rendered.apply(lambda r: r.text),
                "bundle": render.bundle(),
                "confirm": {
                    "url": url,
                    "headers": expect,
                    "timeoutSeconds": settings.flip_timeout_s,
                },
            },
            pulumi.ResourceOptions(parent=parent),
        )
        return EdgeEndpoint(
            url=pulumi.Output.from_input(url),
            generation=pulumi.Output.all(host.digest, generation).apply(lambda v: v[1]),
        )
