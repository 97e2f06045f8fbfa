"""The data stack's database on NixOS, and what an arm node with bluegreen:schemaRevision gets.

The database (`NixosData`): one `bluegreen:nixos:Host` for bluegreen:dataNode, deployed over the
same ssh as every other node, whose file imports nixos/modules/data-node.nix
(`services.bluegreen-data`): nixpkgs' services.postgresql listening on the node's address at
bluegreen:databasePort, the role `bluegreen` owning a database named after bluegreen:appName (the
local platform's settings), scram-sha-256 from the networks of bluegreen:dataClients only
(pg_hba.conf). The password (bluegreen:databasePassword) goes over that ssh as a root-only file
in /var/lib/bluegreen/secrets (`secretFiles`, ssh_deploy.py), never near /etc/nixos or the Nix
store: a oneshot unit hands it to psql as a systemd credential, and a deploy that changes it
restarts that unit before the migration connects.

The migration (platforms/migration.py) runs where `pulumi` runs: it connects to the node's
PostgreSQL over the network, so that machine's address must be in bluegreen:dataClients too.

An arm with bluegreen:schemaRevision (`arm_data`): its DSN reaches each node the same way, as
/var/lib/bluegreen/secrets/<app>-<colour>.dsn, which the arm module hands to the app as a
systemd credential (`--dsn-file=%d/dsn`) with `--items-shape`; a deploy that changes the DSN
restarts the app.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pulumi

from bluegreen.config import ArmSettings, DataSettings
from bluegreen.config_parts.data_settings import DATABASE_PASSWORD
from bluegreen.reader import NAMESPACE, Reader, is_host
from platforms.base import DataEndpoint, DataLink, DataPlatform, refused
from platforms.nixos import bundle, render
from platforms.nixos.host import NixosHost
from platforms.nixos.ssh_deploy import SECRETS_DIR

if TYPE_CHECKING:
    from platforms.nixos import Ssh

ROLE = "bluegreen"
"""The role the arms and the migration connect as: the local platform's (local_data.ROLE)."""
PACKAGE = "postgresql_16"
"""The PostgreSQL the data node runs (data-node.nix's default): part of `instance`, since another
major is another data directory, which starts empty."""
PASSWORD_UNIT = "bluegreen-data-password.service"
ARM_UNIT = "bluegreen-arm.service"
_SECRET_PATH = r"/[A-Za-z0-9._/-]{1,255}"
"""data-node.nix's and arm-node.nix's `secretPath`."""


def _checked_path(path: str) -> str:
    if not re.fullmatch(_SECRET_PATH, path):
        raise ValueError(f"refusing to render {path!r} as a secret file's path: {_SECRET_PATH}")
    return path


def secret_name(app: str, role: str, suffix: str) -> str:
    """A secret file's name in ssh_deploy.SECRETS_DIR, e.g. `shop-data.password`."""
    return f"{render.checked('name', f'{app}-{role}')}.{suffix}"


def dsn(host: str, port: int, database: str, password: str) -> str:
    """The DSN of the data node's database (an IPv6 address in brackets)."""
    where = f"[{host}]" if ":" in host else host
    return f"postgresql://{ROLE}:{quote(password, safe='')}@{where}:{int(port)}/{quote(database)}"


def read_clients(read: Reader) -> tuple[str, ...]:
    """bluegreen:dataClients: the networks pg_hba.conf lets connect, normalised."""
    key = "dataClients"
    allowed = (
        "a JSON list of networks such as 10.0.0.0/24: the arm nodes' and the one of the machine "
        "that runs `pulumi up -s data` (the migration)"
    )
    raw = read.strings(key)
    if not raw:
        read.problems.append(
            refused(
                key,
                list(raw),
                "nothing could connect to the database, not even the migration",
                allowed,
            )
        )
    found = []
    for value in raw:
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError:
            read.problem(key, value, f"{allowed}, each without host bits")
            continue
        if network.prefixlen == 0:
            read.problems.append(
                refused(key, value, "that is every address there is", f"{allowed}, no /0")
            )
            continue
        found.append(str(network))
    return tuple(found)


def data_node(
    *,
    stack: str,
    node: str,
    port: int,
    database: str,
    password_file: str,
    clients: tuple[str, ...],
) -> str:
    """The data node's configuration: PostgreSQL for the arms, as data-node.nix runs it."""
    if not 1 <= int(port) <= 65535 or isinstance(port, bool):
        raise ValueError(f"refusing to render port {port!r}: 1 to 65535 expected")
    for c in clients:
        if not re.fullmatch(r"[0-9A-Fa-f:.]+/[0-9]{1,3}", c):
            raise ValueError(f"refusing to render {c!r} as a network of bluegreen:dataClients")
    nets = " ".join(render.nix_string(c) for c in clients)
    stack, node = render.checked("stack", stack), render.checked("host", node)
    return f"""\
# Rendered by bluegreen for stack {stack}, node {node}.
# `pulumi up -s {stack}` overwrites this file; change Pulumi.{stack}.yaml instead.
{{ ... }}:

{{
  imports = [ ./nixos/modules/data-node.nix ];

  services.bluegreen-data = {{
    enable = true;
    listenAddress = {render.nix_string(node)};
    port = {int(port)};
    database = {render.nix_string(render.checked("name", database))};
    role = {render.nix_string(ROLE)};
    passwordFile = {render.nix_string(_checked_path(password_file))};
    clients = [ {nets} ];
  }};
}}
"""


def arm_data(s: ArmSettings, data: DataLink | None) -> tuple[str, dict[str, Any]]:
    """An arm node's lines of services.bluegreen-arm and its host's further inputs, for an arm
    that reads the data stack; ("", {}) for one that does not, which is rendered and deployed
    exactly as before."""
    if data is None:
        return "", {}
    name = secret_name(s.app_name, s.color, "dsn")
    shape = data.items_shape
    if shape not in ("v1", "v2"):
        raise ValueError(f"refusing to render items shape {shape!r}: v1 or v2 expected")
    lines = (
        f"    dsnFile = {render.nix_string(_checked_path(f'{SECRETS_DIR}/{name}'))};\n"
        f'    itemsShape = "{shape}";\n'
    )
    return lines, {
        "secretFiles": data.dsn.apply(lambda value: {name: value}),
        "onSecretChange": f"systemctl restart {ARM_UNIT}",
    }


@dataclass(frozen=True)
class NixosData(DataPlatform):
    """PostgreSQL on a NixOS node of its own, deployed over ssh like the others."""

    node: str
    """bluegreen:dataNode: the node's address, where PostgreSQL listens."""
    port: int
    """bluegreen:databasePort."""
    clients: tuple[str, ...]
    """bluegreen:dataClients: the networks that may connect."""
    ssh: Ssh

    @classmethod
    def from_config(cls, read: Reader) -> NixosData:
        from platforms.nixos import Ssh  # the package imports this module

        node = read.required(
            "dataNode", ": the nixos platform needs the address of the node that runs PostgreSQL"
        )
        if node and not is_host(node):
            read.problems.append(
                f'bluegreen:dataNode must be an IP address or host name, got "{node}"'
            )
        return cls(
            node=node,
            port=read.port("databasePort"),
            clients=read_clients(read),
            ssh=Ssh.from_config(read),
        )

    def database(self, name: str, parent: pulumi.Resource, s: DataSettings) -> DataEndpoint:
        password = pulumi.Config(NAMESPACE).require_secret(DATABASE_PASSWORD)
        secret = secret_name(s.app_name, "data", "password")
        host = NixosHost(
            f"{name}-{self.node}",
            {
                **self.ssh.connection(s.run_dir, self.node),
                "fileName": render.file_name(s.app_name, "data"),
                "config": data_node(
                    stack=s.stack,
                    node=self.node,
                    port=self.port,
                    database=s.app_name,
                    password_file=f"{SECRETS_DIR}/{secret}",
                    clients=self.clients,
                ),
                "bundle": bundle.files(),
                "secretFiles": password.apply(lambda value: {secret: value}),
                # Sets a new password before the migration connects with it.
                "onSecretChange": f"systemctl restart {PASSWORD_UNIT}",
                # Nothing to probe over HTTP: the migration waits for the server to take it.
                "confirm": None,
            },
            pulumi.ResourceOptions(parent=parent),
        )
        node, port, database = self.node, self.port, s.app_name
        url = pulumi.Output.all(password, host.digest).apply(
            lambda args: dsn(node, port, database, args[0])
        )
        instance = f"nixos:{render.host_port(node, port)}/{database}@{PACKAGE}"
        return DataEndpoint(
            dsn=pulumi.Output.secret(url), instance=pulumi.Output.from_input(instance)
        )
