"""What the nixos tests share: tests/{unit,integration}/test_nixos.py and test_nixos_data.py."""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile

from bluegreen import nginx
from bluegreen.config import Backpressure, weights_for
from platforms.nixos import bundle, nixos_data, render
from tests.support.mocks import maintenance, stack

ROOT = bundle.ROOT


NODES = {"blue": ["10.0.0.10:8000"], "green": ["10.0.0.11:8000"]}


VERSIONS = {"blue": "v1", "green": "v2"}


def module_path(module: str) -> str:
    """One of the repo's modules: a file (arm-node.nix) or a directory (edge-node/default.nix
    imports the rest of its files)."""
    path = os.path.join(ROOT, "nixos", "modules", module)
    return path if os.path.isdir(path) else f"{path}.nix"


def live_defaults():
    """The live stack's edge settings with Pulumi.yaml's defaults."""
    return stack("live", role="edge", activeColor="blue").settings


def edge_config(
    active: str = "blue", nodes=None, canary: int | None = None, **kw
) -> render.EdgeConfig:
    """The edge node's file as the live stack renders it; features off unless `kw` says."""
    defaults = live_defaults()
    kw.setdefault("maintenance", maintenance(enabled=False))
    kw.setdefault("versions", VERSIONS)
    kw.setdefault("cache", defaults.cache)
    kw.setdefault("shadow", defaults.shadow)
    kw.setdefault("backpressure", defaults.backpressure)
    kw.setdefault("lease", LEASE)
    kw.setdefault("probe_token", PROBE_TOKEN)
    return render.edge_node(
        stack="live",
        app="shop",
        active_color=active,
        nodes=nodes or NODES,
        weights=weights_for(active, canary),
        port=18080,
        **kw,
    )


NOW = 1795000000.0
"""The edge host's clock in these tests (`frozen_clock`): the writer lease is stamped with it."""


LEASE = nginx.Lease(fence=1, since=NOW, handover=5)


PROBE_TOKEN = "c0ffee" * 6
"""The edge's probe token in these tests (`nginx.probe_token` makes a random one)."""


ALWAYS = Backpressure(
    rate=200, burst=20, connections=100, retry_after_s=2, when="always", hold_s=300
)


HOLD = dataclasses.replace(ALWAYS, when="hold", connections=0)


def arm_config(node: str = "10.0.0.10", version: str = "v1", color: str = "blue") -> str:
    return render.arm_node(
        stack=color,
        node=node,
        color=color,
        version=version,
        port=8000,
        health_path="/healthz/ready",
    )


EVIL = [
    'v1"; services.openssh.enable = false; "',
    '${builtins.abort "injected"}',
    "v1; }",
    "v1 } location / { return 200",
    "back\\slash\\",
    "$${x} $ {",
    "line\nbreak\r\ttab",
]


def props(config: str, **extra) -> dict:
    return {
        "host": "10.0.0.10",
        "user": "root",
        "port": 22,
        "knownHosts": "/tmp/bluegreen-test/known_hosts",
        "remoteDir": "/etc/nixos/bluegreen",
        "rebuild": "nixos-rebuild",
        "sshKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n",
        "fileName": "shop-blue.nix",
        "config": config,
        "bundle": {"nixos/modules/arm-node.nix": "{ ... }: { }\n"},
        "confirm": None,
        **extra,
    }


def edge_props(active: str = "blue", backpressure: Backpressure = HOLD) -> dict:
    """The edge host's inputs: no file, the settings the host renders it from."""
    spec = render.edge_spec(
        stack="live",
        app="shop",
        active_color=active,
        nodes=NODES,
        weights=weights_for(active),
        versions=VERSIONS,
        port=18080,
        maintenance=maintenance(enabled=False),
        cache=live_defaults().cache,
        shadow=live_defaults().shadow,
        backpressure=backpressure,
        sticky=False,
        prometheus_port=19090,
    )
    base = {k: v for k, v in props("").items() if k != "config"}
    return {**base, "fileName": "shop-edge.nix", "edge": spec}


def deployed_file(call: tuple[list[str], bytes | None]) -> str:
    with tarfile.open(fileobj=io.BytesIO(call[1])) as tar:
        return tar.extractfile("shop-edge.nix").read().decode()


DATA_PASSWORD_FILE = "/var/lib/bluegreen/secrets/shop-data.password"


def data_config(**kw) -> str:
    """The data node's host file, for the data stack of app `shop` on 10.0.0.20."""
    args = {
        "stack": "data",
        "node": "10.0.0.20",
        "port": 15432,
        "database": "shop",
        "password_file": DATA_PASSWORD_FILE,
        "clients": ("10.0.0.0/24",),
        **kw,
    }
    return nixos_data.data_node(**args)
