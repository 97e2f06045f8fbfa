"""The files every NixOS host gets next to its rendered configuration (`files`): the modules,
the nginx text the edge module reads, the reference app, and the sources of bluegreen's agents
(nixos/pkgs/bluegreen-tools.nix), at the same relative paths as in the repo."""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The edge module, a directory of files as nixpkgs' nginx module is (default.nix imports the
# rest); every one of them ships.
EDGE_MODULE_FILES = tuple(
    f"nixos/modules/edge-node/{name}"
    for name in (
        "default.nix",
        "common.nix",
        "options.nix",
        "cache-options.nix",
        "shadow-options.nix",
        "limits-options.nix",
        "prometheus-options.nix",
        "lease-options.nix",
        "maintenance-options.nix",
        "queue-options.nix",
        "nginx.nix",
        "switch-state.nix",
        "queue.nix",
        "prometheus.nix",
    )
)

# What the edge module makes nginx.conf of, besides the options: part of its fingerprint.
EDGE_MODULE = (
    *EDGE_MODULE_FILES,
    "bluegreen/nginx_text/proxy.conf",
    "bluegreen/nginx_text/sticky-maps.conf",
    "bluegreen/nginx_text/switch.js",
)

# Files every host gets next to its rendered config, at the same relative paths as in the repo,
# so that the modules' relative imports (../pkgs, ../../app) resolve on the host as they do here.
BUNDLE = (
    "nixos/modules/arm-node.nix",
    "nixos/modules/data-node.nix",
    *EDGE_MODULE_FILES,
    "bluegreen/nginx_text/proxy.conf",
    "bluegreen/nginx_text/sticky-maps.conf",
    "bluegreen/nginx_text/switch.js",
    "nixos/pkgs/bluegreen-app.nix",
    "nixos/pkgs/bluegreen-tools.nix",
    "app/server.py",
    "app/idempotency.py",
    "app/metrics.py",
    "app/items.py",
    "app/consumer.py",
)

# The Python packages nixos/pkgs/bluegreen-tools.nix builds the nodes' agents from
# (`bluegreen-writer`, `bluegreen-queue`), with their subpackages: the core and the agents,
# nothing of the command.
BUNDLE_PACKAGES = ("bluegreen", "agents")


def _sources(root: str) -> list[str]:
    """The Python files of BUNDLE_PACKAGES and their subpackages, relative to `root`."""
    found = []
    for package in BUNDLE_PACKAGES:
        for folder, subfolders, names in os.walk(os.path.join(root, package)):
            subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
            rel = os.path.relpath(folder, root).replace(os.sep, "/")
            found.extend(f"{rel}/{name}" for name in names if name.endswith(".py"))
    return sorted(found)


def files(root: str = ROOT) -> dict[str, str]:
    """The modules, the reference app and bluegreen's own programs' sources, by their paths
    relative to the repo (and the host dir)."""
    files = {}
    sources = _sources(root)
    for rel in (*BUNDLE, *sources):
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            files[rel] = f.read()
    return files


def edge_module_text(root: str = ROOT) -> str:
    """The texts of EDGE_MODULE, one after the other: what the fingerprint of nginx.conf covers
    besides the options (`render.edge_node`)."""
    texts = []
    for rel in EDGE_MODULE:
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            texts.append(f.read())
    return "".join(texts)
