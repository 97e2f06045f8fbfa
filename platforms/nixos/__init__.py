"""NixOS hosts reached over SSH: each arm node runs the app as a systemd service, the edge node
runs nginx as the traffic switch, the data node PostgreSQL (nixos_data.py; modules in
nixos/modules, rendering in render.py, what ships in bundle.py, the deploy in host.py).

An arm stack declares one `bluegreen:nixos:Host` per node of `bluegreen:nodes`; the live stack
declares one for `bluegreen:edgeNode`, or one per site of `bluegreen:edges`, whose place is that
site's edge node (nixos_sites.py; setting both is refused). Every edge node is rendered from the
same settings, deployed over the same ssh and confirms the new colour through itself; one that a
flip in waves does not move yet keeps its traffic (edge_hold.py), and every node serves one writer
lease, released on all at once (lease_release.py). A flip changes the edge's rendered file only,
so only the edge host is switched, and there only the switch state in /etc changes: nginx reads it
per request and is not reloaded (nixos/modules/edge-node/). The (first) edge node also runs
Prometheus scraping both arms (the hold after a flip reads it, through the live stack's `metrics`
output), unless bluegreen:prometheusUrl names a Prometheus of the operator's own. Missing or
malformed nodes, users, ports, commands and URLs are refused while the keys are read, and so is
bluegreen:cacheWarmPaths (`refusals`); whether one edge node answers is only known by deploying
to it, but with several a flip is refused while a node deployed before cannot be reached
(`preflight`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from bluegreen import arm_metrics
from bluegreen.config import ArmSettings, EdgeSettings
from bluegreen.config_parts.edge_sites import moving
from bluegreen.reader import Alphabet, Reader, is_host
from platforms import held_sites, metrics_keys
from platforms.base import ArmEndpoint, ArmPlatform, Arms, EdgeEndpoint, EdgePlatform, refused
from platforms.nixos import bundle, edge_hold, lease_release, nixos_sites, render, ssh_deploy
from platforms.nixos.host import EdgeHostProvider, NixosHost
from platforms.nixos.nixos_data import DataLink, NixosData, arm_data
from platforms.nixos.ssh_deploy import REMOTE_DIR

# A command name or an absolute path (/run/current-system/sw/bin/nixos-rebuild); it runs in the
# host's shell, so nothing that shell would interpret.
_COMMAND = Alphabet(r"[A-Za-z0-9/][A-Za-z0-9._/:@+-]{0,252}", "a command path")
_USER = Alphabet(r"[a-z_][a-z0-9_-]{0,31}", "a Unix user name")


@dataclass(frozen=True)
class Ssh:
    """How the deploy reaches a host; the key is read as a secret (bluegreen:sshKey)."""

    user: str
    port: int
    rebuild: str
    """The command that switches a host to a configuration (a stand-in in tests)."""

    @classmethod
    def from_config(cls, read: Reader) -> Ssh:
        return cls(
            user=read.matching("sshUser", _USER),
            port=read.integer("sshPort", 1, 65535),
            rebuild=read.matching("nixosRebuild", _COMMAND),
        )

    def connection(self, run_dir: str, host: str, key: str | None = None) -> dict:
        return {
            "host": host,
            "user": self.user,
            "port": self.port,
            "knownHosts": os.path.join(run_dir, "known_hosts"),
            "remoteDir": REMOTE_DIR,
            "rebuild": self.rebuild,
            # A secret Output: the engine keeps it encrypted in the state and masked in every diff.
            "sshKey": key or pulumi.Config("bluegreen").require_secret("sshKey"),
        }


@dataclass(frozen=True)
class NixosArm(ArmPlatform):
    nodes: tuple[str, ...]
    """Addresses of this arm's NixOS nodes (e.g. 10.0.0.10 for blue)."""
    app_port: int
    """Port the app listens on, on every node."""
    ssh: Ssh

    @classmethod
    def from_config(cls, read: Reader) -> NixosArm:
        nodes = read.strings("nodes")
        if not nodes:
            read.missing(
                "nodes", ': the nixos platform needs the arm\'s node addresses, e.g. ["10.0.0.10"]'
            )
        for node in nodes:
            if not is_host(node):
                read.problems.append(
                    f'bluegreen:nodes must hold IP addresses or host names, got "{node}"'
                )
        return cls(
            nodes=nodes, app_port=read.integer("appPort", 1, 65535), ssh=Ssh.from_config(read)
        )

    def arm(
        self, name: str, parent: pulumi.Resource, s: ArmSettings, data: DataLink | None = None
    ) -> ArmEndpoint:
        lines, with_data = arm_data(s, data)
        hosts = []
        for node in self.nodes:
            text = render.arm_node(
                stack=s.stack,
                node=node,
                color=s.color,
                version=s.version,
                port=self.app_port,
                health_path=s.health_path,
                data=lines,
            )
            address = render.host_port(node, self.app_port)
            hosts.append(
                NixosHost(
                    f"{name}-{node}",
                    {
                        **self.ssh.connection(s.run_dir, node),
                        "fileName": render.file_name(s.app_name, s.color),
                        "config": text,
                        "bundle": bundle.files(),
                        # The switch only counts once the node serves the new version.
                        "confirm": {
                            "url": f"http://{address}{s.health_path}",
                            "headers": {
                                "x-bluegreen-color": s.color,
                                "x-bluegreen-version": s.version,
                            },
                            "timeoutSeconds": 60,
                        },
                        **with_data,
                    },
                    pulumi.ResourceOptions(parent=parent),
                )
            )
        nodes = [render.host_port(n, self.app_port) for n in self.nodes]
        endpoint = f"http://{nodes[0]}"
        deployed = pulumi.Output.all(*[h.digest for h in hosts])
        return ArmEndpoint(
            endpoint=deployed.apply(lambda _: endpoint),
            nodes=deployed.apply(lambda _: nodes),
        )


@dataclass(frozen=True)
class NixosEdge(EdgePlatform):
    node: str
    """Address of the NixOS node that runs nginx; "" when bluegreen:edges names one per site."""
    port: int
    """The port nginx listens on for users' traffic."""
    ssh: Ssh
    prometheus_port: int
    """Port of the Prometheus the edge node runs, scraping both arms (unless prometheus_url)."""
    prometheus_url: str | None
    """A Prometheus of the operator's to query instead; the edge node then runs none."""
    queries: Mapping[str, str]
    """PromQL templates over the arms' own metrics (bluegreen/arm_metrics.py)."""
    queue_port: int = 18095
    """The loopback port of the maintenance queue's service on the edge node."""

    @classmethod
    def from_config(cls, read: Reader) -> NixosEdge:
        if (read.optional("edges") or "").strip():
            node = read.optional("edgeNode") or ""  # refused with bluegreen:edges (`refusals`)
        else:
            node = read.required("edgeNode", ": the nixos platform needs the edge node's address")
        if node and not is_host(node):
            read.problems.append(
                f'bluegreen:edgeNode must be an IP address or host name, got "{node}"'
            )
        metrics_keys.source(read, "nixos", ("prometheus",))
        return cls(
            node=node,
            port=read.port("edgePort"),
            ssh=Ssh.from_config(read),
            prometheus_port=read.port("prometheusPort"),
            prometheus_url=metrics_keys.prometheus_url(read),
            queries=metrics_keys.queries(read, arm_metrics.APP_QUERIES),
            queue_port=read.port("maintenanceQueuePort"),
        )

    @property
    def runs_prometheus(self) -> bool:
        return self.prometheus_url is None

    def metrics_url(self, node: str) -> str:
        """Where the hold queries Prometheus: the operator's, or the one the (first) edge node
        `node` runs."""
        if self.prometheus_url is not None:
            return self.prometheus_url
        return f"http://{render.host_port(node, self.prometheus_port)}"

    def refusals(self, s: EdgeSettings) -> list[str]:
        # Warming the cache takes a switch state that only the warming requests see, before the
        # one that moves traffic: two switches of the edge node for one flip.
        found = nixos_sites.refusals(s, self.node)
        if s.cache.warm_paths:
            found.append(
                "bluegreen:cacheWarmPaths must be unset on the nixos platform (the edge node "
                "cannot warm its cache before a flip; bluegreen:cache works without it), "
                f'got "{",".join(s.cache.warm_paths)}"'
            )
        q = s.maintenance.queue
        if q.enabled and q.store == "postgresql":
            # The DSN is a secret: it reaches the node as a file the operator provisions, never
            # through the rendered configuration, which lands in the Nix store.
            found.append(
                refused(
                    "maintenanceQueueStore",
                    "postgresql",
                    "the nixos edge's rendered configuration would put the DSN in the Nix store",
                    'set it to "sqlite", or set services.bluegreen-edge.maintenance.queue.dsnFile '
                    "in the edge node's own configuration",
                )
            )
        return found

    def preflight(self, s: EdgeSettings) -> None:
        key = pulumi.Config("bluegreen").get("sshKey")  # unset: refused as the edge is declared
        if s.sites.several and key:
            nixos_sites.refuse_moving_past_an_unreachable_node(
                s, lambda place: ssh_deploy.reachable(self.ssh.connection(s.run_dir, place, key))
            )

    def edge(self, name: str, parent: pulumi.Resource, s: EdgeSettings, arms: Arms) -> EdgeEndpoint:
        sites = nixos_sites.edge_sites(s, self.node)
        moves = moving(s.sites, os.environ)
        urls = [f"http://{render.host_port(site.place, self.port)}/" for site in sites]
        if s.sites.several:  # who holds the one writer lease (lease_release.py)
            traffic = held_sites.site_traffic(s, [site.name for site in sites], os.environ)
            shared = {"holder": lease_release.holder(traffic) or ""}  # "": nobody
        deployed = []
        for i, (site, url) in enumerate(zip(sites, urls, strict=True)):
            several = {}
            if s.sites.several:
                several[edge_hold.PEERS] = [u for u in urls if u != url]
                several[edge_hold.SHARED] = shared
                if moves is not None and site.name not in moves:
                    several[edge_hold.HOLD] = True
            deployed.append(
                self.edge_host(
                    nixos_sites.resource_name(name, i, site),
                    parent,
                    s,
                    arms,
                    site.place,
                    # The first edge node runs the Prometheus the hold reads: one for the stack.
                    prometheus=i == 0 and self.runs_prometheus,
                    several=several,
                )
            )
        selectors = {c: arm_metrics.color_selector(c) for c in arms}
        source = metrics_keys.prometheus_output(
            self.metrics_url(sites[0].place), self.queries, selectors
        )
        exports = {}
        if s.sites.several:
            connections = {x.name: self.ssh.connection(s.run_dir, x.place) for x in sites}
            lease_release.EdgeLeaseStamp(
                f"{name}-lease",
                lease_release.stamp_props(
                    connections, {x.name: h.lease for x, h in zip(sites, deployed, strict=True)}
                ),
                pulumi.ResourceOptions(parent=parent, depends_on=deployed),
            )
            # What each node serves once it applied the update: during a flip in waves the
            # sites of the waves not moved yet still serve the colour they served.
            exports["edges"] = {
                site.name: h.edge.apply(
                    lambda e, site=site, url=url: {
                        "url": url,
                        "activeColor": e["activeColor"],
                        "weights": {c: int(w) for c, w in e["weights"].items()},
                        "node": site.place,
                    }
                )
                for site, url, h in zip(sites, urls, deployed, strict=True)
            }
        return EdgeEndpoint(
            url=pulumi.Output.from_input(urls[0]),
            generation=deployed[0].generation
            if len(deployed) == 1
            else pulumi.Output.all(*[h.generation for h in deployed]).apply(
                lambda gens: ",".join(str(g) for g in gens)
            ),
            # Once the node is switched: its Prometheus runs from then on.
            metrics=deployed[0].digest.apply(lambda _: source),
            exports=exports,
            # The DNS name's records then give every edge node.
            hosts=[site.place for site in sites] if s.sites.several else None,
        )

    def edge_host(
        self,
        resource: str,
        parent: pulumi.Resource,
        s: EdgeSettings,
        arms: Arms,
        node: str,
        prometheus: bool,
        several: dict,
    ) -> NixosHost:
        """One edge node, rendered from the edge's settings; `several`: the inputs of a site of
        bluegreen:edges (the other edges, and whether it holds its traffic)."""
        url = f"http://{render.host_port(node, self.port)}/"
        weights = s.weights
        colors = list(arms)
        # The host renders the file from these (EdgeHostProvider): with bluegreen:limitWhen
        # "hold", when the limits end depends on when traffic last moved.
        spec = pulumi.Output.all(
            *[arms[c].nodes for c in colors], *[arms[c].version for c in colors]
        ).apply(
            lambda values: render.edge_spec(
                stack=s.stack,
                app=s.app_name,
                active_color=s.active_color,
                nodes=dict(zip(colors, values[: len(colors)], strict=True)),
                weights=weights,
                versions=dict(zip(colors, values[len(colors) :], strict=True)),
                port=self.port,
                maintenance=s.maintenance,
                cache=s.cache,
                shadow=s.shadow,
                backpressure=s.backpressure,
                sticky=s.sticky,
                prometheus_port=self.prometheus_port if prometheus else None,
                handover=s.handover_s,
                queue_port=self.queue_port,
            )
        )
        return NixosHost(
            resource,
            {
                **self.ssh.connection(s.run_dir, node),
                "fileName": render.file_name(s.app_name, "edge"),
                "edge": spec,
                "bundle": bundle.files(),
                "confirm": {
                    "url": url,
                    # Through the edge, the colour that answers must be the new one (not a
                    # canary); the switch state's generation is added where it is rendered.
                    "headers": edge_hold.color_header(weights),
                    "timeoutSeconds": s.flip_timeout_s,
                },
                **several,
            },
            pulumi.ResourceOptions(parent=parent),
            provider=EdgeHostProvider(),
        )


ARM = NixosArm
EDGE = NixosEdge
DATA = NixosData
