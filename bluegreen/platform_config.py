"""Config of the real-deployment platforms and of DNS, validated with the rest of the config.

A platform that is selected but not configured (no node address, no zone, no kube context) fails
here, naming the missing key, before anything is created. Secrets (the SSH key, the TSIG secret)
are not read here: the platforms read them with `Config.require_secret`, so they stay secret.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

Getter = Callable[[str], "str | None"]

_HOST = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_ZONE = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\.?$")
_AWS_ID = re.compile(r"^[a-z]+-[0-9a-f]{8,17}$")
# A command name or an absolute path (/run/current-system/sw/bin/nixos-rebuild); it runs in the
# host's shell, so nothing that shell would interpret.
_COMMAND = re.compile(r"^[A-Za-z0-9/][A-Za-z0-9._/:@+-]{0,252}$")
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Nixos:
    nodes: tuple[str, ...] = ()
    """Arm: addresses of this arm's NixOS nodes (e.g. 10.0.0.10 for blue)."""
    edge_node: str | None = None
    """Edge: address of the NixOS node that runs nginx."""
    app_port: int = 8000
    """Port the app listens on, on every arm node."""
    ssh_user: str = "root"
    ssh_port: int = 22
    rebuild: str = "nixos-rebuild"
    """The command that switches a host to a configuration (a stand-in in tests)."""


@dataclass(frozen=True)
class Aws:
    vpc_id: str = ""
    subnet_ids: tuple[str, ...] = ()
    ami: str = ""
    """Arm: the image the launch template boots."""
    instance_type: str = "t3.small"
    app_port: int = 8000
    certificate_arn: str = ""
    """Edge: serve HTTPS with this ACM certificate; plain HTTP when empty."""
    stickiness_seconds: int = 0
    """Edge: keep a client on one target group for this long during canary steps (0: off)."""


@dataclass(frozen=True)
class Kubernetes:
    context: str = ""
    namespace: str = "default"
    image: str = ""
    """Arm: the container image; the version is its tag unless the image already has one."""
    app_port: int = 8000
    ingress_host: str = ""
    ingress_class: str = "nginx"


@dataclass(frozen=True)
class Dns:
    provider: str = "none"
    """none, route53 or rfc2136 (BIND, Knot, PowerDNS dynamic updates)."""
    zone: str = ""
    """The zone the names live in: <app>.<zone> (live), blue.<zone>, green.<zone>."""
    zone_id: str = ""
    """Route 53 hosted zone id."""
    ttl: int = 30  # TTL at most 30 s (blue_green_switchovers)
    switch: bool = False
    """DNS-based switch: the live name points at the active arm rather than at the edge."""
    server: str = "127.0.0.1:18053"
    """RFC 2136: host:port of the primary that accepts updates (local: the one bluegreen runs)."""
    tsig_key_name: str = "bluegreen"
    tsig_algorithm: str = "hmac-sha256"


def _list(get: Getter, key: str, problems: list[str]) -> tuple[str, ...]:
    raw = get(key)
    if raw is None:
        return ()
    try:
        value = json.loads(raw)
    except ValueError:
        value = [v.strip() for v in raw.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f'bluegreen:{key} must be a list of strings, got "{raw}"')
        return ()
    return tuple(value)


def _int(get: Getter, key: str, default: int, low: int, high: int, problems: list[str]) -> int:
    raw = get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
        if low <= value <= high:
            return value
    except ValueError:
        pass
    problems.append(f'bluegreen:{key} must be an integer from {low} to {high}, got "{raw}"')
    return default


def _host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(_HOST.match(value))


def _require(get: Getter, key: str, platform: str, why: str, problems: list[str]) -> str:
    value = get(key)
    if value is None:
        problems.append(f"bluegreen:{key} is not set: the {platform} platform needs {why}")
        return ""
    return value


def nixos(get: Getter, role: str, problems: list[str]) -> Nixos:
    nodes: tuple[str, ...] = ()
    edge_node = None
    if role == "arm":
        nodes = _list(get, "nodes", problems)
        if not nodes:
            problems.append(
                "bluegreen:nodes is not set: the nixos platform needs the arm's node addresses, "
                'e.g. ["10.0.0.10"]'
            )
        for node in nodes:
            if not _host(node):
                problems.append(
                    f'bluegreen:nodes must hold IP addresses or host names, got "{node}"'
                )
    else:
        edge_node = _require(get, "edgeNode", "nixos", "the edge node's address", problems)
        if edge_node and not _host(edge_node):
            problems.append(
                f'bluegreen:edgeNode must be an IP address or host name, got "{edge_node}"'
            )
    ssh_user = get("sshUser") or "root"
    if not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", ssh_user):
        problems.append(f'bluegreen:sshUser must be a Unix user name, got "{ssh_user}"')
    rebuild = get("nixosRebuild") or "nixos-rebuild"
    if not _COMMAND.match(rebuild):
        problems.append(f'bluegreen:nixosRebuild must be a command path, got "{rebuild}"')
    return Nixos(
        nodes=nodes,
        edge_node=edge_node,
        app_port=_int(get, "appPort", 8000, 1, 65535, problems),
        ssh_user=ssh_user,
        ssh_port=_int(get, "sshPort", 22, 1, 65535, problems),
        rebuild=rebuild,
    )


def aws(get: Getter, role: str, problems: list[str]) -> Aws:
    vpc = _require(get, "vpcId", "aws", "the VPC id (vpc-...)", problems)
    if vpc and not _AWS_ID.match(vpc):
        problems.append(f'bluegreen:vpcId must look like vpc-0123abcd, got "{vpc}"')
    subnets = _list(get, "subnetIds", problems)
    if len(subnets) < 2:
        problems.append(
            f"bluegreen:subnetIds must list at least two subnets in different zones "
            f"(an ALB needs two), got {list(subnets)}"
        )
    ami = ""
    if role == "arm":
        ami = _require(get, "ami", "aws", "the AMI the arm boots (ami-...)", problems)
        if ami and not _AWS_ID.match(ami):
            problems.append(f'bluegreen:ami must look like ami-0123abcd, got "{ami}"')
    instance_type = get("instanceType") or "t3.small"
    if not re.match(r"^[a-z0-9]+\.[a-z0-9]+$", instance_type):
        problems.append(f'bluegreen:instanceType must look like t3.small, got "{instance_type}"')
    return Aws(
        vpc_id=vpc,
        subnet_ids=subnets,
        ami=ami,
        instance_type=instance_type,
        app_port=_int(get, "appPort", 8000, 1, 65535, problems),
        certificate_arn=get("certificateArn") or "",
        stickiness_seconds=_int(get, "stickinessSeconds", 0, 0, 604800, problems),
    )


def kubernetes(get: Getter, role: str, problems: list[str]) -> Kubernetes:
    context = _require(
        get, "kubeContext", "kubernetes", "the kubeconfig context to deploy to", problems
    )
    namespace = get("namespace") or "default"
    if not _K8S_NAME.match(namespace):
        problems.append(f'bluegreen:namespace must be a Kubernetes name, got "{namespace}"')
    image = ""
    if role == "arm":
        image = _require(get, "image", "kubernetes", "the container image of the app", problems)
        if image and not re.match(r"^[a-z0-9][a-z0-9._/:@-]{0,254}$", image):
            problems.append(f'bluegreen:image must be an image reference, got "{image}"')
    host = get("ingressHost") or ""
    if host and not _HOST.match(host):
        problems.append(f'bluegreen:ingressHost must be a host name, got "{host}"')
    return Kubernetes(
        context=context,
        namespace=namespace,
        image=image,
        app_port=_int(get, "appPort", 8000, 1, 65535, problems),
        ingress_host=host,
        ingress_class=get("ingressClass") or "nginx",
    )


def dns(get: Getter, platform: str, problems: list[str]) -> Dns:
    provider = get("dnsProvider") or "none"
    if provider not in ("none", "route53", "rfc2136"):
        problems.append(
            f'bluegreen:dnsProvider must be "none", "route53" or "rfc2136", got "{provider}"'
        )
        return Dns()
    if provider == "none":
        return Dns()
    zone = (get("dnsZone") or "").rstrip(".").lower()
    if not zone:
        problems.append(
            f"bluegreen:dnsZone is not set: bluegreen:dnsProvider {provider} needs a zone"
        )
    elif not _ZONE.match(zone + "."):
        problems.append(
            f'bluegreen:dnsZone must be a DNS zone such as shop.example.com, got "{zone}"'
        )
    zone_id = get("dnsZoneId") or ""
    if provider == "route53" and not zone_id:
        problems.append("bluegreen:dnsZoneId is not set: Route 53 needs the hosted zone id")
    server = get("dnsServer") or "127.0.0.1:18053"
    host, _, port = server.rpartition(":")
    if not host or not _host(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        problems.append(f'bluegreen:dnsServer must be host:port, got "{server}"')
    algorithm = get("tsigAlgorithm") or "hmac-sha256"
    if algorithm not in ("hmac-sha256", "hmac-sha512", "hmac-sha384"):
        problems.append(
            "bluegreen:tsigAlgorithm must be hmac-sha256, hmac-sha384 or hmac-sha512, "
            f'got "{algorithm}"'
        )
    key_name = get("tsigKeyName") or "bluegreen"
    if not _HOST.match(key_name):
        problems.append(f'bluegreen:tsigKeyName must be a DNS name, got "{key_name}"')
    switch = (get("dnsSwitch") or "false").lower()
    if switch not in ("true", "false"):
        problems.append(f'bluegreen:dnsSwitch must be true or false, got "{switch}"')
    return Dns(
        provider=provider,
        zone=zone,
        zone_id=zone_id,
        ttl=_int(get, "dnsTtl", 30, 1, 86400, problems),
        switch=switch == "true",
        server=server,
        tsig_key_name=key_name,
        tsig_algorithm=algorithm,
    )
