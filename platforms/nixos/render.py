"""The Nix text of the node configurations the nixos platform writes to its hosts.

An arm stack renders one file per node of the arm; the live stack renders the edge node's file.
Each is a small module that imports `nixos/modules/arm-node.nix` or `edge-node.nix` (shipped
next to it, see `bundle`) and sets its options, so a flip is a diff of a few option values.

Every value is rendered here, at the boundary, in two steps: it must match a strict alphabet
(`;`, `{`, `}`, quotes, spaces and newlines never do), and it is then written as an escaped Nix
string, so that `"`, `${` or `\\` could not leave the string even if an alphabet were widened.
The modules check the same alphabets again with their option types, which protects hand-written
node configs as well.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bluegreen import nginx
from bluegreen.config import COLORS, Maintenance
from bluegreen.reader import BANNER, STACK, URL_PATH, VERSION
from bluegreen.switch import maintenance_body

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Files every host gets next to its rendered config, at the same relative paths as in the repo,
# so that the modules' relative imports (../pkgs, ../../app) resolve on the host as they do here.
BUNDLE = (
    "nixos/modules/arm-node.nix",
    "nixos/modules/edge-node.nix",
    "nixos/modules/nginx/proxy.conf",
    "nixos/modules/nginx/sticky-maps.conf",
    "nixos/pkgs/bluegreen-app.nix",
    "app/server.py",
)

_PATTERNS = {
    "address": r"(\[[0-9A-Fa-f:.]+]|[A-Za-z0-9][A-Za-z0-9.-]{0,252}):[0-9]{1,5}",
    "host": r"[0-9A-Fa-f:.]+|[A-Za-z0-9][A-Za-z0-9.-]{0,252}",
    "version": VERSION.pattern,
    "path": URL_PATH.pattern,
    "name": r"[a-z][a-z0-9-]{0,62}",
    "stack": STACK.pattern,
    "color": "|".join(COLORS),
    "parameter": r"[a-z][a-z_]{0,31}",
    "word": r"[A-Za-z0-9._-]{1,64}",
    "banner": BANNER.pattern,
    # Sent inside nginx single quotes: no quote to end it, no `$` to expand, one line.
    "body": r"[^'$\\\n\r]{1,1000}",
}
_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def nix_string(value: str) -> str:
    """`value` as a Nix string literal that evaluates to exactly `value`."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def checked(kind: str, value: str) -> str:
    """`value` if it fits the alphabet of `kind`; a ValueError naming both otherwise."""
    if not isinstance(value, str) or not re.fullmatch(_PATTERNS[kind], value):
        raise ValueError(
            f"refusing to render {value!r} as a {kind} into a NixOS node configuration: "
            f"it must match {_PATTERNS[kind]}"
        )
    return value


def _str(kind: str, value: str) -> str:
    return nix_string(checked(kind, value))


def _int(value: int, low: int, high: int) -> str:
    number = int(value)
    if isinstance(value, bool) or number != value or not low <= number <= high:
        raise ValueError(f"refusing to render {value!r}: an integer from {low} to {high} expected")
    return str(number)


def host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets as nginx and URLs want it."""
    checked("host", host)
    return f"[{host}]:{int(port)}" if ":" in host else f"{host}:{int(port)}"


def file_name(app: str, role: str) -> str:
    """The file a stack owns in the host's /etc/nixos/bluegreen, e.g. `shop-blue.nix`."""
    return f"{checked('name', f'{app}-{role}')}.nix"


def bundle(root: str = ROOT) -> dict[str, str]:
    """The modules and the reference app, by their paths relative to the repo (and the host dir)."""
    files = {}
    for rel in BUNDLE:
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            files[rel] = f.read()
    return files


def arm_node(
    *,
    stack: str,
    node: str,
    color: str,
    version: str,
    port: int,
    health_path: str,
) -> str:
    """The configuration of one node of an arm: the app as a service at `version`."""
    return f"""\
# Rendered by bluegreen for stack {checked("stack", stack)}, node {checked("host", node)}.
# `pulumi up -s {stack}` overwrites this file; change Pulumi.{stack}.yaml instead.
{{ ... }}:

{{
  imports = [ ./nixos/modules/arm-node.nix ];

  services.bluegreen-arm = {{
    enable = true;
    color = {_str("color", color)};
    version = {_str("version", version)};
    port = {_int(port, 1, 65535)};
    healthPath = {_str("path", health_path)};
  }};
}}
"""


@dataclass(frozen=True)
class EdgeConfig:
    text: str
    """The Nix file."""
    generation: str
    """Fingerprint of the file, sent by the edge as `X-Bluegreen-Edge-Generation`."""


def edge_node(
    *,
    stack: str,
    app: str,
    active_color: str,
    servers: Sequence[nginx.Server],
    port: int,
    maintenance: Maintenance,
    sticky: bool = False,
    prometheus_port: int | None = None,
) -> EdgeConfig:
    """The edge node's configuration: nginx with `servers` (from `nginx.servers_for`) as the
    upstream, the live arm weighted and the idle arm `backup`, exactly as `render_upstream`;
    the same sticky canary and the same maintenance answer as the local edge. With
    `prometheus_port`, the node also runs Prometheus there, scraping every server's metrics
    (the hold reads it); None: the operator's own Prometheus does (bluegreen:prometheusUrl)."""
    m = maintenance
    if m.status not in (503, 423):
        raise ValueError(f"refusing to render maintenance status {m.status}: 503 or 423 expected")
    if not any(s.weight > 0 for s in servers):
        raise ValueError("refusing to render an edge whose upstream has no server with a weight")
    lines = [
        f"      {{ address = {_str('address', s.address)}; color = {_str('color', s.color)}; "
        f"weight = {_int(s.weight, 0, 100)}; }}"
        for s in servers
    ]
    failover = " ".join(
        f"{checked('parameter', k)} = "
        + (_int(v, 0, 1_000_000) if isinstance(v, int) else _str("word", v))
        + ";"
        for k, v in sorted(nginx.FAILOVER.items())
    )
    if prometheus_port is None:
        prometheus = "    prometheus.enable = false;\n"
    else:
        prometheus = (
            "    prometheus = {\n"
            "      enable = true;\n"
            f"      port = {_int(prometheus_port, 1, 65535)};\n"
            "    };\n"
        )
    text = f"""\
# Rendered by bluegreen for stack {checked("stack", stack)} from its bluegreen:activeColor.
# `pulumi up -s {stack}` overwrites this file; a flip is a change of Pulumi.{stack}.yaml.
{{ ... }}:

{{
  imports = [ ./nixos/modules/edge-node.nix ];

  services.bluegreen-edge = {{
    enable = true;
    upstreamName = {nix_string("bluegreen_" + checked("name", app).replace("-", "_"))};
    activeColor = {_str("color", active_color)};
    port = {_int(port, 1, 65535)};
    servers = [
{chr(10).join(lines)}
    ];
    # The same parameters and keep-alive as bluegreen.nginx.render_upstream.
    serverParameters = {{ {failover} }};
    keepalive = {_int(nginx.KEEPALIVE, 1, 100_000)};
    stickyCanary = {"true" if sticky else "false"};
    maintenance = {{
      enable = {"true" if m.enabled else "false"};
      status = {_int(m.status, 423, 503)};
      retryAfter = {_int(m.retry_after_s, 1, 86400)};
      banner = {_str("banner", m.banner)};
      body = {_str("body", maintenance_body(m))};
    }};
{prometheus}    generation = "@GENERATION@";
  }};
}}
"""
    gen = nginx.generation(text)
    return EdgeConfig(text=text.replace("@GENERATION@", gen), generation=gen)
