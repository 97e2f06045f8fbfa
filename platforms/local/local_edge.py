"""The local edge: nginx on loopback (nginx_edge.py), one per site of bluegreen:edges, each on
its own loopback address as a stand-in for a site; beside them what the edge's features run here:
the maintenance queue's service, Prometheus scraping the arms, Knot DNS for RFC 2136 records."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from bluegreen import arm_metrics, nginx
from bluegreen.config import ConfigError, Dns, EdgeSettings
from bluegreen.config_parts.edge_sites import health_checked, moving
from bluegreen.reader import Reader
from platforms import metrics_keys
from platforms.base import Arms, EdgeEndpoint, EdgePlatform
from platforms.local import edge_services
from platforms.local.edge_files import listens_on
from platforms.local.lease_stamp import LeaseStamp
from platforms.local.local_sites import (
    Site,
    refuse_bad_places,
    refuse_moving_past_an_unreachable_edge,
    shared_lease,
    site_traffic,
)
from platforms.local.loopback import read_bind_address, refuse_taken
from platforms.local.nginx_binary import NO_JS, js_module
from platforms.local.nginx_edge import NginxEdge
from platforms.local.process import running_from


@dataclass(frozen=True)
class LocalEdge(EdgePlatform):
    """The edge: nginx on loopback, and Knot DNS for RFC 2136 records."""

    bind_address: str
    port: int
    """The port nginx listens on for users' traffic."""
    metrics: str
    """What the hold reads: "accessLog" (nginx's) or "prometheus" (run here, scraping the arms)."""
    prometheus_port: int
    queries: Mapping[str, str]
    """PromQL templates over the arms' own metrics (bluegreen/arm_metrics.py)."""
    queue_port: int = 18095
    """The port of the maintenance queue's service (bluegreen:maintenanceQueuePort)."""
    dns_health_port: int = 18096
    """The port of the DNS health agent's report, with several edges (bluegreen:dnsHealthPort)."""

    @classmethod
    def from_config(cls, read: Reader) -> LocalEdge:
        return cls(
            bind_address=read_bind_address(read),
            port=read.port("edgePort"),
            metrics=metrics_keys.source(read, "local", ("accessLog", "prometheus")),
            prometheus_port=read.port("prometheusPort"),
            queries=metrics_keys.queries(read, arm_metrics.APP_QUERIES),
            queue_port=read.port("maintenanceQueuePort"),
            dns_health_port=read.port("dnsHealthPort"),
        )

    @property
    def listen(self) -> str:
        return f"{self.bind_address}:{self.port}"

    @property
    def queue_listen(self) -> str:
        return f"{self.bind_address}:{self.queue_port}"

    def sites(self, s: EdgeSettings) -> list[Site]:
        """Each nginx this stack runs: one per site of bluegreen:edges, in its order, or the
        single edge at bluegreen:bindAddress."""
        if not s.sites.several:
            return [Site("", self.bind_address, self.port, s.run_dir)]
        return [
            Site(
                site.name,
                site.place,
                self.port,
                s.run_dir if i == 0 else f"{s.run_dir}-{site.name}",
            )
            for i, site in enumerate(s.sites.sites)
        ]

    def preflight(self, s: EdgeSettings) -> None:
        sites = self.sites(s)
        refuse_bad_places(s)
        for site in sites:
            ours = listens_on(site.run_dir) == site.listen
            refuse_taken(site.host, site.port, "edgePort", ours)
        refuse_moving_past_an_unreachable_edge(s, sites)
        if js_module() is None:
            raise ConfigError([NO_JS + " (nothing was changed)"])
        if self.metrics == "prometheus":
            if not shutil.which("prometheus"):
                raise ConfigError(
                    [
                        'bluegreen:metrics is "prometheus", but no prometheus binary is on PATH: '
                        "install Debian's prometheus package (scripts/bootstrap does), or set "
                        'bluegreen:metrics to "accessLog" (nothing was changed)'
                    ]
                )
            ours = running_from(os.path.join(s.run_dir, "prometheus.pid"))
            refuse_taken(self.bind_address, self.prometheus_port, "prometheusPort", ours)
        if health_checked(s.sites, s.dns):
            ours = running_from(os.path.join(s.run_dir, "dns-health.pid"))
            refuse_taken(self.bind_address, self.dns_health_port, "dnsHealthPort", ours)
        if s.maintenance.queue.enabled:
            ours = running_from(os.path.join(s.run_dir, "queue.pid"))
            refuse_taken(self.bind_address, self.queue_port, "maintenanceQueuePort", ours)
        else:
            edge_services.refuse_dropping_intents(s.run_dir)

    def edge(self, name: str, parent: pulumi.Resource, s: EdgeSettings, arms: Arms) -> EdgeEndpoint:
        nodes = pulumi.Output.all(*[arms[c].nodes for c in arms]).apply(
            lambda node_lists: dict(zip(arms, node_lists, strict=True))
        )
        sites = self.sites(s)
        moves = moving(s.sites, os.environ)
        traffic = {site.name: site_traffic(s, site, moves) for site in sites}
        lease = shared_lease(sites, traffic) if s.sites.several else None
        switches = [
            self.switch(
                f"{name}-nginx" + (f"-{site.name}" if i else ""),
                parent,
                s,
                site,
                traffic[site.name],
                nodes,
                arms,
                lease,
            )
            for i, site in enumerate(sites)
        ]
        if lease is not None:
            LeaseStamp(
                f"{name}-lease",
                {**lease, "runDirs": [site.run_dir for site in sites]},
                pulumi.ResourceOptions(parent=parent, depends_on=switches),
            )
        if s.maintenance.queue.enabled:
            edge_services.queue_service(self, name, parent, s, sites[0])
        if self.metrics == "prometheus":
            source = edge_services.prometheus(self, name, parent, s, arms)
        else:
            logs = {site.name: os.path.join(site.run_dir, "access.log") for site in sites}
            paths = list(logs.values())
            several = {"paths": paths, "sites": logs} if s.sites.several else {}
            source = pulumi.Output.from_input({"source": "accessLog", "path": paths[0], **several})
        exports = {}
        if s.sites.several:
            # What each site serves once its switch applied it: during a flip in waves the sites
            # of the waves not moved yet still serve the colour they served.
            exports["edges"] = {
                site.name: sw.generation.apply(
                    lambda _, site=site: {
                        "url": f"http://{site.listen}/",
                        "listen": site.listen,
                        "activeColor": traffic[site.name][0],
                        "weights": traffic[site.name][1],
                    }
                )
                for site, sw in zip(sites, switches, strict=True)
            }
        return EdgeEndpoint(
            url=pulumi.Output.from_input(f"http://{sites[0].listen}/"),
            generation=switches[0].generation
            if len(switches) == 1
            else pulumi.Output.all(*[sw.generation for sw in switches]).apply(
                lambda gens: ",".join(str(g) for g in gens)
            ),
            metrics=source,
            exports=exports,
            hosts=[site.host for site in sites],
        )

    def switch(
        self,
        resource: str,
        parent: pulumi.Resource,
        s: EdgeSettings,
        site: Site,
        traffic: tuple[str, dict[str, int]],
        nodes: pulumi.Output,
        arms: Arms,
        lease: dict | None = None,
    ) -> NginxEdge:
        """One site's nginx: every site gets the same serving state from the same update, but
        for the colour and weights of a site a flip in waves has not moved yet (`traffic`)."""
        return NginxEdge(
            resource,
            {
                "app": s.app_name,
                "runDir": site.run_dir,
                "listen": site.listen,
                "activeColor": traffic[0],
                "weights": traffic[1],
                "nodes": nodes,
                "arms": {
                    c: {"endpoint": a.endpoint, "version": a.version} for c, a in arms.items()
                },
                "healthPath": s.health_path,
                "confirmTimeout": s.flip_timeout_s,
                "sticky": s.sticky,
                "handover": s.handover_s,
                "queueListen": self.queue_listen if s.maintenance.queue.enabled else "",
                **({"siteLease": lease} if lease is not None else {}),
                **nginx.Features(s.maintenance, s.cache, s.shadow, s.backpressure).props(),
            },
            pulumi.ResourceOptions(parent=parent),
        )

    def dns_server(
        self, name: str, parent: pulumi.Resource, s: EdgeSettings, d: Dns, secret: pulumi.Output
    ) -> list[pulumi.Resource]:
        return edge_services.dns_server(self, name, parent, s, d, secret, self.sites(s))
