"""What the local edge runs beside its nginx: the maintenance queue's service, Prometheus scraping
the arms, Knot DNS for RFC 2136 records and, with several edges, the DNS health agent that takes a
failed edge out of the live name's answer. Each is a real process on loopback (process.py)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pulumi

from agents.edge import intents
from agents.edge.dns_health import REPORT_PATH as DNS_HEALTH_PATH
from bluegreen import arm_metrics
from bluegreen.config import QUEUE_DSN, ConfigError, Dns, EdgeSettings
from bluegreen.config_parts.edge_sites import health_checked
from bluegreen.reader import NAMESPACE
from platforms import dns, metrics_keys
from platforms.base import Arms
from platforms.local.edge_files import PROBE_TOKEN_FILE
from platforms.local.loopback import ROOT
from platforms.local.process import Process

if TYPE_CHECKING:
    from platforms.local.local_edge import LocalEdge
    from platforms.local.local_sites import Site


def refuse_dropping_intents(run_dir: str) -> None:
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


def prometheus(
    edge: LocalEdge, name: str, parent: pulumi.Resource, s: EdgeSettings, arms: Arms
) -> pulumi.Output[dict]:
    """A real Prometheus on loopback scraping both arms every second; the hold queries it."""
    address = f"{edge.bind_address}:{edge.prometheus_port}"
    path = os.path.join(s.run_dir, "prometheus.yml")
    scrape = pulumi.Output.all(*[arms[c].nodes for c in arms]).apply(
        lambda node_lists: json.dumps(prometheus_config(dict(zip(arms, node_lists, strict=True))))
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
            "bind": edge.bind_address,
            "port": edge.prometheus_port,
            "portKey": "bluegreen:prometheusPort",
            "healthUrl": f"http://{address}/-/ready",
            "logPath": os.path.join(s.run_dir, "prometheus.log"),
            "pidPath": os.path.join(s.run_dir, "prometheus.pid"),
        },
        pulumi.ResourceOptions(parent=parent),
    )
    selectors = {c: arm_metrics.color_selector(c) for c in arms}
    return server.pid.apply(
        lambda _: metrics_keys.prometheus_output(f"http://{address}", edge.queries, selectors)
    )


def queue_service(
    edge: LocalEdge, name: str, parent: pulumi.Resource, s: EdgeSettings, site: Site
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
                f"--listen={edge.queue_listen}",
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
            "bind": edge.bind_address,
            "port": edge.queue_port,
            "portKey": "bluegreen:maintenanceQueuePort",
            "healthUrl": f"http://{edge.queue_listen}/_bluegreen/queue/health",
            "logPath": os.path.join(s.run_dir, "queue.log"),
            "pidPath": os.path.join(s.run_dir, "queue.pid"),
        },
        pulumi.ResourceOptions(parent=parent, additional_secret_outputs=["files"]),
    )


def dns_server(
    edge: LocalEdge,
    name: str,
    parent: pulumi.Resource,
    s: EdgeSettings,
    d: Dns,
    secret: pulumi.Output,
    sites: list[Site],
) -> list[pulumi.Resource]:
    """Knot DNS on loopback at bluegreen:dnsServer, authoritative for the zone; with several
    edges, the health agent beside it (`dns_health`)."""
    from platforms.local.dns_server import DnsServer

    server = DnsServer(
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
    if not health_checked(s.sites, s.dns):
        return [server]
    return [server, dns_health(edge, name, parent, s, d, secret, sites, server)]


def dns_health(
    edge: LocalEdge,
    name: str,
    parent: pulumi.Resource,
    s: EdgeSettings,
    d: Dns,
    secret: pulumi.Output,
    sites: list[Site],
    server: pulumi.Resource,
) -> Process:
    """The agent that keeps the live name answering only the edges that answer
    (agents/edge/dns_health.py says how, and the bound). Its TSIG key reaches it in an
    owner-only file, never on its command line."""
    key_path = os.path.join(s.run_dir, "dns-health.key")
    key = secret.apply(
        lambda value: json.dumps(
            {"name": d.tsig_key_name, "algorithm": d.tsig_algorithm, "secret": value}
        )
    )
    listen = f"{edge.bind_address}:{edge.dns_health_port}"
    return Process(
        f"{name}-dns-health",
        {
            "name": f"{s.app_name}-dns-health",
            "argv": [
                sys.executable,
                "-m",
                "agents.edge.dns_health",
                f"--listen={listen}",
                f"--server={d.server}",
                f"--zone={d.zone}",
                f"--name={dns.names(s.app_name, d.zone).live}",
                f"--ttl={d.ttl}",
                f"--key-file={key_path}",
                *[f"--edge={site.name}={site.listen}" for site in sites],
            ],
            "cwd": s.run_dir,
            "env": {"PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"},
            "files": {key_path: key},
            "bind": edge.bind_address,
            "port": edge.dns_health_port,
            "portKey": "bluegreen:dnsHealthPort",
            "healthUrl": f"http://{listen}{DNS_HEALTH_PATH}",
            "logPath": os.path.join(s.run_dir, "dns-health.log"),
            "pidPath": os.path.join(s.run_dir, "dns-health.pid"),
        },
        pulumi.ResourceOptions(
            parent=parent, depends_on=[server], additional_secret_outputs=["files"]
        ),
    )


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
