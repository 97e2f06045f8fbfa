"""The local edge: nginx on loopback (nginx_edge.py), one per site of bluegreen:edges, each on
its own loopback address as a stand-in for a site; beside them what the edge's features run here:
the maintenance queue's service, Prometheus scraping the arms, Knot DNS for RFC 2136 records."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from agents.edge import intents
from bluegreen import arm_metrics, nginx
from bluegreen.config import QUEUE_DSN, ConfigError, Dns, EdgeSettings
from bluegreen.config_parts.edge_sites import moving
from bluegreen.reader import NAMESPACE, Reader
from platforms import metrics_keys
from platforms.base import Arms, EdgeEndpoint, EdgePlatform
from platforms.local.edge_files import PROBE_TOKEN_FILE, listens_on
from platforms.local.local_sites import (
    Site,
    refuse_bad_places,
    refuse_moving_past_an_unreachable_edge,
    site_traffic,
)
from platforms.local.loopback import ROOT, read_bind_address, refuse_taken
from platforms.local.nginx_binary import NO_JS, js_module
from platforms.local.nginx_edge import NginxEdge
from platforms.local.process import Process, running_from


def _refuse_dropping_intents(run_dir: str) -> None:
    """Turning the queue off stops the service that replays it: while the local store still holds
    intents to replay, that would leave accepted writes behind, so it is refused."""
    files = intents.local_files(run_dir)
    if not os.path.exists(files.store_path) or not os.path.exists(files.key):
        return
    store = intents.open_store(files.store, intents.load_key(files.key))
    try:
        pending = store.counts()["pending"]
    finally:
        store.close()
    if pending:
        raise ConfigError(
            [
                f'bluegreen:maintenanceQueue is "", but {pending} write intent(s) kept during '
                f"maintenance are still pending in {files.store_path}: keep it set until the "
                "queue service has replayed them, which it does once writes are open (bluegreen "
                "status shows the count) (nothing was changed)"
            ]
        )


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

    @classmethod
    def from_config(cls, read: Reader) -> LocalEdge:
        return cls(
            bind_address=read_bind_address(read),
            port=read.port("edgePort"),
            metrics=metrics_keys.source(read, "local", ("accessLog", "prometheus")),
            prometheus_port=read.port("prometheusPort"),
            queries=metrics_keys.queries(read, arm_metrics.APP_QUERIES),
            queue_port=read.port("maintenanceQueuePort"),
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
        if s.maintenance.queue.enabled:
            ours = running_from(os.path.join(s.run_dir, "queue.pid"))
            refuse_taken(self.bind_address, self.queue_port, "maintenanceQueuePort", ours)
        else:
            _refuse_dropping_intents(s.run_dir)

    def edge(self, name: str, parent: pulumi.Resource, s: EdgeSettings, arms: Arms) -> EdgeEndpoint:
        nodes = pulumi.Output.all(*[arms[c].nodes for c in arms]).apply(
            lambda node_lists: dict(zip(arms, node_lists, strict=True))
        )
        sites = self.sites(s)
        moves = moving(s.sites, os.environ)
        traffic = {site.name: site_traffic(s, site, moves) for site in sites}
        switches = [
            self.switch(
                f"{name}-nginx" + (f"-{site.name}" if i else ""),
                parent,
                s,
                site,
                traffic[site.name],
                nodes,
                arms,
            )
            for i, site in enumerate(sites)
        ]
        if s.maintenance.queue.enabled:
            self.queue_service(name, parent, s, sites[0])
        if self.metrics == "prometheus":
            source = self.prometheus(name, parent, s, arms)
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
                **nginx.Features(s.maintenance, s.cache, s.shadow, s.backpressure).props(),
            },
            pulumi.ResourceOptions(parent=parent),
        )

    def prometheus(
        self, name: str, parent: pulumi.Resource, s: EdgeSettings, arms: Arms
    ) -> pulumi.Output[dict]:
        """A real Prometheus on loopback scraping both arms every second; the hold queries it."""
        address = f"{self.bind_address}:{self.prometheus_port}"
        path = os.path.join(s.run_dir, "prometheus.yml")
        scrape = pulumi.Output.all(*[arms[c].nodes for c in arms]).apply(
            lambda node_lists: json.dumps(
                prometheus_config(dict(zip(arms, node_lists, strict=True)))
            )
        )
        server = Process(
            f"{name}-prometheus",
            {
                "name": f"{s.app_name}-prometheus",
                "argv": [
                    shutil.which("prometheus") or "prometheus",
                    f"--config.file={path}",
                    f"--storage.tsdb.path={os.path.join(s.run_dir, 'prometheus')}",
                    "--storage.tsdb.retention.time=2d",
                    f"--web.listen-address={address}",
                    "--log.level=warn",
                ],
                "cwd": s.run_dir,
                "env": {},
                "files": {path: scrape},
                "bind": self.bind_address,
                "port": self.prometheus_port,
                "portKey": "bluegreen:prometheusPort",
                "healthUrl": f"http://{address}/-/ready",
                "logPath": os.path.join(s.run_dir, "prometheus.log"),
                "pidPath": os.path.join(s.run_dir, "prometheus.pid"),
            },
            pulumi.ResourceOptions(parent=parent),
        )
        selectors = {c: arm_metrics.color_selector(c) for c in arms}
        return server.pid.apply(
            lambda _: metrics_keys.prometheus_output(f"http://{address}", self.queries, selectors)
        )

    def queue_service(
        self, name: str, parent: pulumi.Resource, s: EdgeSettings, site: Site
    ) -> Process:
        """The maintenance queue's service on loopback: nginx passes it the keyed writes to
        queued paths during maintenance; it replays them through the edge once writes are open.
        With several sites, one service keeps the store every site's nginx passes writes to,
        and replays each through the first site, once.
        Its store and key are owner-only files in the run directory (or PostgreSQL, whose DSN
        goes to it in an owner-only file, never in its command line)."""
        q = s.maintenance.queue
        local = intents.local_files(s.run_dir)
        files: dict[str, pulumi.Input[str]] = {}
        if q.store == "postgresql":
            store = ["--store-file", local.dsn_file]
            files[local.dsn_file] = pulumi.Config(NAMESPACE).require_secret(QUEUE_DSN)
        else:
            store = ["--store", local.store]
        return Process(
            f"{name}-queue",
            {
                "name": f"{s.app_name}-queue",
                "argv": [
                    sys.executable,
                    "-m",
                    "agents.edge.queue_service",
                    f"--listen={self.queue_listen}",
                    *store,
                    f"--key-file={local.key}",
                    f"--edge=http://{site.listen}",
                    f"--max-body-kb={q.max_body_kb}",
                    f"--soak={q.soak_s}",
                    f"--max-pending={q.max_pending}",
                    f"--max-pending-mb={q.max_pending_mb}",
                    f"--max-per-client={q.max_per_client}",
                    f"--min-free-mb={q.min_free_mb}",
                    f"--retry-horizon={q.retry_minutes * 60}",
                    # The edge's probe token (nginx_edge writes it, owner-only, on its first
                    # apply): the service's polls and replays prove themselves with it.
                    f"--probe-token-file={os.path.join(site.run_dir, PROBE_TOKEN_FILE)}",
                ],
                "cwd": s.run_dir,
                "env": {"PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"},
                "files": files,
                "bind": self.bind_address,
                "port": self.queue_port,
                "portKey": "bluegreen:maintenanceQueuePort",
                "healthUrl": f"http://{self.queue_listen}/_bluegreen/queue/health",
                "logPath": os.path.join(s.run_dir, "queue.log"),
                "pidPath": os.path.join(s.run_dir, "queue.pid"),
            },
            pulumi.ResourceOptions(parent=parent, additional_secret_outputs=["files"]),
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


def prometheus_config(nodes: Mapping[str, list[str]]) -> dict:
    """Prometheus's config (JSON is YAML) scraping each arm's nodes every second."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "bluegreen-arms",
                "metrics_path": arm_metrics.PATH,
                "static_configs": [
                    {"targets": list(addresses), "labels": {"arm": color}}
                    for color, addresses in sorted(nodes.items())
                ],
            }
        ],
    }
