"""The nixos platform without a NixOS host: the Nix it ships and renders, evaluated for real.

No nixpkgs is available offline, so `nix-instantiate` (Debian's nix-bin) evaluates the node
configs with `nixos/tests/lib-stub.nix` in place of nixpkgs' lib. The nginx that the edge
module describes is assembled the way nixpkgs' nginx module writes it and run for real on
loopback (Debian's njs module standing in for the one nixpkgs builds in), with the switch state
the module puts in /etc, so maintenance mode and a flip without a reload are checked by
requests, not by reading text. The SSH transport itself is proven in tests/e2e/test_nixos_ssh.py
against a real sshd.
"""

from __future__ import annotations

import dataclasses
import difflib
import glob
import http.client
import http.server
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import threading
import time
import types
from datetime import UTC, datetime, timedelta

import pulumi
import pytest
from pulumi.runtime import rpc

from bluegreen import arm_metrics, config, nginx, probe
from bluegreen.config import Backpressure, Cache, ConfigError, Queue, Shadow, Window, weights_for
from bluegreen.nginx_conf import render_local
from bluegreen.reader import BANNER, URL_PATH, VERSION
from bluegreen.switch import WRITE_METHODS, maintenance_body
from platforms.local.nginx_binary import js_module
from platforms.nixos import bundle, host, render, ssh_deploy
from tests.support.sandbox import free_ports
from tests.unit.mocks import maintenance, stack

ROOT = bundle.ROOT
EVAL = os.path.join(ROOT, "nixos", "tests", "eval-node.nix")
NODES = {"blue": ["10.0.0.10:8000"], "green": ["10.0.0.11:8000"]}
TWO_BLUE = {"blue": ["10.0.0.10:8000", "10.0.0.12:8000"], "green": ["10.0.0.11:8000"]}
VERSIONS = {"blue": "v1", "green": "v2"}
STATE = "bluegreen-edge/switch.json"
LEASE_DIR = "/var/lib/bluegreen-edge/lease"


# --- running nix-instantiate offline ---------------------------------------------------------


@pytest.fixture(scope="module")
def nix_env(tmp_path_factory) -> dict[str, str]:
    """Environment for nix-instantiate as root on a fresh machine: no daemon, no /nix needed.

    `--store dummy://` (see `nix`) keeps evaluation from opening a store at all; the state and
    config directories point into a temp dir so that nothing under /nix or ~ is read or created.
    """
    if shutil.which("nix-instantiate") is None:
        pytest.fail("nix-instantiate is not installed: run scripts/bootstrap (Debian's nix-bin)")
    state = tmp_path_factory.mktemp("nix-state")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIX_")}
    env.update(
        NIX_STATE_DIR=str(state / "state"),
        NIX_LOG_DIR=str(state / "log"),
        NIX_CONF_DIR=str(state / "conf"),
        HOME=str(state),
        NIX_PATH="",
    )
    return env


def nix(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["nix-instantiate", "--store", "dummy://", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def evaluate(env: dict[str, str], node: str) -> dict:
    """eval-node.nix on one node file: its options, what it defines, its failed assertions."""
    done = nix(env, "--eval", "--strict", "--json", EVAL, "--arg", "node", node)
    assert done.returncode == 0, f"evaluating {node} failed:\n{done.stderr}"
    return json.loads(done.stdout)


def evaluation_error(env: dict[str, str], node: str) -> str:
    done = nix(env, "--eval", "--strict", "--json", EVAL, "--arg", "node", node)
    assert done.returncode != 0, f"{node} evaluated although it should not:\n{done.stdout}"
    return done.stderr


def on_host(tmp_path, file_name: str, text: str) -> str:
    """Lay out a rendered file with its bundle as the deploy does in /etc/nixos/bluegreen."""
    for rel, content in {**bundle.files(), file_name: text}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return str(tmp_path / file_name)


def module_path(module: str) -> str:
    """One of the repo's modules: a file (arm-node.nix) or a directory (edge-node/default.nix
    imports the rest of its files)."""
    path = os.path.join(ROOT, "nixos", "modules", module)
    return path if os.path.isdir(path) else f"{path}.nix"


def module_text(module: str) -> str:
    """The text of a module, all of its files if it is a directory."""
    path = module_path(module)
    files = sorted(glob.glob(os.path.join(path, "*.nix"))) if os.path.isdir(path) else [path]
    return "".join(open(f, encoding="utf-8").read() for f in files)


def node_file(tmp_path, module: str, body: str) -> str:
    """A hand-written node config importing one of the repo's modules."""
    path = tmp_path / "node.nix"
    path.write_text(f"{{ ... }}: {{ imports = [ {module_path(module)} ]; {body} }}\n")
    return str(path)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    """The edge host provider's clock, fixed (only its own: the module's `time`), so that the
    lease it stamps is the same in every render a test compares."""
    clock = types.SimpleNamespace(
        **{n: getattr(time, n) for n in dir(time) if not n.startswith("_")}
    )
    clock.time = lambda: NOW
    monkeypatch.setattr(host, "time", clock)


@pytest.fixture(autouse=True)
def fixed_probe_token(monkeypatch):
    """A new edge's probe token is random (`nginx.probe_token`): here the same in every render a
    test compares."""
    monkeypatch.setattr(nginx, "new_token", lambda: PROBE_TOKEN)


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
WINDOW = Window(datetime(2026, 11, 24, 1, 0, tzinfo=UTC), datetime(2026, 11, 24, 2, 30, tzinfo=UTC))
QUEUE = Queue(paths=("/orders", "/cart"), max_body_kb=16)
CACHE = Cache(enabled=True, max_size_mb=64, warm_paths=())
SHADOW = Shadow(percent=10, writes=True)
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


# --- everything parses -----------------------------------------------------------------------


@pytest.mark.integration
def test_every_nix_file_the_project_ships_parses(nix_env):
    files = sorted(glob.glob(os.path.join(ROOT, "nixos", "**", "*.nix"), recursive=True))
    assert len(files) >= 8, files
    for path in files:
        done = nix(nix_env, "--parse", path)
        assert done.returncode == 0, f"{path} does not parse:\n{done.stderr}"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("shop-blue.nix", arm_config()),
        ("shop-blue.nix", arm_config(node="blue-1.example.com", version="v1.4.2+build.7")),
        ("shop-green.nix", arm_config(node="fd00::11", color="green", version="v2")),
        ("shop-edge.nix", edge_config("blue").text),
        ("shop-edge.nix", edge_config("green", maintenance=maintenance()).text),
        ("shop-edge.nix", edge_config("green", canary=25, sticky=True).text),
        (
            "shop-edge.nix",
            edge_config(
                "green", cache=CACHE, shadow=SHADOW, backpressure=HOLD, limits_until=1800000000
            ).text,
        ),
    ],
)
@pytest.mark.integration
def test_every_config_the_adapter_renders_parses(nix_env, tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    done = nix(nix_env, "--parse", str(path))
    assert done.returncode == 0, f"rendered {name} does not parse:\n{done.stderr}\n{text}"


# --- the edge: the same upstream groups as the local platform ---------------------------------


def upstream_lines(nginx_cfg: dict) -> dict[str, dict[str, set[str]]]:
    """Each upstream's server lines as nixpkgs' nginx module writes them: parameters in key order,
    `true` as the bare key, `false` left out, anything else as key=value."""

    def param(key, value):
        if isinstance(value, bool):
            return key if value else None
        return f"{key}={value}"

    return {
        name: {
            address: {p for p in (param(k, v) for k, v in sorted(params.items())) if p}
            for address, params in upstream["servers"].items()
        }
        for name, upstream in nginx_cfg["upstreams"].items()
    }


def group_lines(servers) -> dict[str, set[str]]:
    """`nginx.groups`' (address, parameters) of one group, as upstream_lines has them."""
    return {
        address: {k if v is True else f"{k}={v}" for k, v in params.items()}
        for address, params in servers
    }


@pytest.mark.integration
@pytest.mark.parametrize(
    ("active", "canary", "nodes", "shadow"),
    [
        ("blue", None, NODES, Shadow(0, False)),
        ("green", None, NODES, Shadow(0, False)),
        ("blue", None, TWO_BLUE, Shadow(0, False)),
        ("green", 25, TWO_BLUE, Shadow(0, False)),
        ("green", None, TWO_BLUE, SHADOW),
    ],
)
def test_the_edge_upstreams_are_bluegreen_nginx_groups(
    nix_env, tmp_path, active, canary, nodes, shadow
):
    """One group per colour, its own nodes with FAILOVER and the other colour's as backup,
    whichever colour is active (a flip changes no group); the shadow groups only while shadow
    traffic is on, each colour's own nodes."""
    rendered = edge_config(active, nodes, canary, shadow=shadow)
    result = evaluate(nix_env, on_host(tmp_path, "shop-edge.nix", rendered.text))
    assert result["failedAssertions"] == []
    nginx_cfg = result["config"]["services"]["nginx"]

    want = {
        nginx.group_name("shop", color): group_lines(servers)
        for color, servers in nginx.groups(nodes).items()
    }
    if shadow.percent:
        want |= {
            nginx.group_name("shop", color, shadow=True): group_lines(
                [(a, nginx.FAILOVER) for a in addresses]
            )
            for color, addresses in nodes.items()
        }
    assert upstream_lines(nginx_cfg) == want
    for name, upstream in nginx_cfg["upstreams"].items():
        assert directives(upstream["extraConfig"]) == [f"keepalive {nginx.KEEPALIVE};"], name


# --- one source for what the modules share with the config and the local edge ----------------


@pytest.mark.parametrize(
    ("module", "pattern"),
    [
        ("arm-node", VERSION.pattern),
        ("arm-node", URL_PATH.pattern),
        ("arm-node", render._PATTERNS["host"]),
        ("edge-node", VERSION.pattern),
        ("edge-node", URL_PATH.pattern),
        ("edge-node", BANNER.pattern),
        ("edge-node", render._PATTERNS["address"]),
        ("edge-node", render._PATTERNS["host"]),
    ],
)
def test_the_modules_check_the_alphabets_the_config_checks(module, pattern):
    assert f"types.strMatching {render.nix_string(pattern)}" in module_text(module)


def test_every_file_of_the_edge_module_ships_and_counts_in_its_fingerprint():
    """The edge module is a directory: a file added to it must be shipped to the host (it is
    imported there) and be part of what nginx.conf's fingerprint is made of."""
    files = {
        os.path.relpath(f, ROOT) for f in glob.glob(os.path.join(module_path("edge-node"), "*.nix"))
    }
    assert files == set(bundle.EDGE_MODULE_FILES)
    assert files <= set(bundle.BUNDLE) and files <= set(bundle.EDGE_MODULE)


def directives(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()[:1] not in ("", "#")]


def block(text: str, opener: str) -> list[str]:
    """The directives inside the block of `text` that `opener` opens, e.g. `location / {`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == opener)
    depth = 0
    for end in range(start, len(lines)):
        depth += lines[end].count("{") - lines[end].count("}")
        if depth == 0:
            return directives("\n".join(lines[start + 1 : end]))
    raise AssertionError(f"{opener} is not closed")


def js_import(nginx_cfg: dict) -> str:
    """The path the module has nginx import switch.js from."""
    (line,) = [d for d in directives(nginx_cfg["commonHttpConfig"]) if d.startswith("js_import ")]
    return line.split()[-1].rstrip(";")


def state_of(result: dict) -> dict:
    """The switch state the module puts in /etc."""
    return json.loads(result["config"]["environment"]["etc"][STATE]["text"])


FEATURES = [
    pytest.param(None, None, None, id="no-features"),
    pytest.param(CACHE, None, None, id="cache"),
    pytest.param(None, SHADOW, None, id="shadow"),
    pytest.param(None, None, ALWAYS, id="limits"),
    pytest.param(None, None, dataclasses.replace(ALWAYS, rate=0), id="connection-cap"),
    pytest.param(None, None, dataclasses.replace(ALWAYS, burst=0), id="rate-without-burst"),
    pytest.param(CACHE, SHADOW, HOLD, id="everything"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("cache", "shadow", "backpressure"), FEATURES)
def test_the_edge_module_says_what_render_local_says(
    nix_env, tmp_path, cache, shadow, backpressure
):
    """render_local is the reference: the module's http-level switch (js_import, the js_set
    variables, the maps, the limit zones, the cache path), its location `/` and the shadow
    location are the local edge's, but for where the files are on NixOS."""
    defaults = live_defaults()
    features = {
        "cache": cache or defaults.cache,
        "shadow": shadow or defaults.shadow,
        "backpressure": backpressure or defaults.backpressure,
    }
    rendered = edge_config("green", TWO_BLUE, **features)
    result = evaluate(nix_env, on_host(tmp_path, "shop-edge.nix", rendered.text))
    assert result["failedAssertions"] == []
    nginx_cfg = result["config"]["services"]["nginx"]
    local = render_local(
        app="shop",
        run_dir="/run/bluegreen",
        listen="127.0.0.1:18080",
        nodes=TWO_BLUE,
        js_module="/modules/ngx_http_js_module.so",
        **features,
    )
    local = re.sub(r'(\$bluegreen_conf \{ default )"[0-9a-f]+"', rf'\1"{rendered.conf}"', local)
    for there, here in [
        ("/run/bluegreen/switch.json", f"/etc/{STATE}"),
        ("/run/bluegreen/lease", LEASE_DIR),
        ("/run/bluegreen/switch.js", js_import(nginx_cfg)),
        ("/run/bluegreen/cache", "/var/cache/nginx/bluegreen"),
    ]:
        local = local.replace(there, here)
    lines = local.splitlines()

    # The http-level switch: from js_import to the first upstream group. The module's js_set
    # lines come in the order of a Nix attribute set, which nginx does not care about.
    start = next(i for i, line in enumerate(lines) if "js_import" in line)
    end = next(i for i, line in enumerate(lines) if line.strip().startswith("upstream "))
    want = directives("\n".join(lines[start:end]))
    got = directives(nginx_cfg["commonHttpConfig"])
    assert sorted(got) == sorted(want)
    assert [d for d in got if not d.startswith("js_set")] == [
        d for d in want if not d.startswith("js_set")
    ]

    # The location every request takes: nixpkgs writes proxy_pass first, then extraConfig.
    locations = nginx_cfg["virtualHosts"]["bluegreen-edge"]["locations"]
    want = block(local, "location / {")
    assert f"proxy_pass {locations['/']['proxyPass']};" in want
    assert directives(locations["/"]["extraConfig"]) == [
        d for d in want if not d.startswith("proxy_pass ")
    ]

    # Shadow traffic: the same location but the local edge's own access log.
    shadow_location = f"location = {nginx.SHADOW_LOCATION} {{"
    if features["shadow"].percent:
        want = block(local, shadow_location)
        mirror = locations[f"= {nginx.SHADOW_LOCATION}"]
        assert f"proxy_pass {mirror['proxyPass']};" in want
        assert directives(mirror["extraConfig"]) == [
            d for d in want if not d.startswith(("proxy_pass ", "log_subrequest ", "access_log "))
        ]
    else:
        assert shadow_location not in local
        assert f"= {nginx.SHADOW_LOCATION}" not in locations

    # The upstream groups, parameters and keep-alive included.
    want = {}
    for name in re.findall(r"^\s*upstream (\S+) \{", local, re.M):
        body = block(local, f"upstream {name} {{")
        want[name] = {
            w[1]: set(w[2:]) for w in (d.rstrip(";").split() for d in body) if w[0] == "server"
        }
        assert body[-1] == f"keepalive {nginx.KEEPALIVE};"
    assert upstream_lines(nginx_cfg) == want


@pytest.mark.integration
def test_the_js_variables_are_the_ones_bluegreen_nginx_names(nix_env, tmp_path):
    """The Nix list of switch.js's variables is pinned to JS_VARIABLES, and every function it
    names is one switch.js exports."""
    result = evaluate(nix_env, on_host(tmp_path, "shop-edge.nix", edge_config("blue").text))
    common = directives(result["config"]["services"]["nginx"]["commonHttpConfig"])
    js_sets = [d.rstrip(";").split() for d in common if d.startswith("js_set ")]
    assert {var.lstrip("$"): fn.removeprefix("bluegreen.") for _, var, fn in js_sets} == (
        nginx.JS_VARIABLES
    )
    assert len(js_sets) == len(nginx.JS_VARIABLES)
    exported = nginx.SWITCH_JS.split("export default {", 1)[1].split("}", 1)[0]
    assert set(nginx.JS_VARIABLES.values()) <= {n.strip() for n in exported.split(",")}


@pytest.mark.integration
def test_nginx_imports_the_switch_js_of_the_bundle(nix_env, tmp_path):
    """js_import names the store path of the bundled nginx/switch.js (the same name and text
    give the same path), which the deploy ships next to the module."""
    assert "bluegreen/nginx_text/switch.js" in bundle.BUNDLE
    path = on_host(tmp_path, "shop-edge.nix", edge_config("blue").text)
    result = evaluate(nix_env, path)
    js = os.path.join(os.path.dirname(path), "bluegreen", "nginx_text", "switch.js")
    done = nix(nix_env, "--eval", "--json", "-E", f'"${{{js}}}"')
    assert done.returncode == 0, done.stderr
    assert js_import(result["config"]["services"]["nginx"]) == json.loads(done.stdout)
    assert result["config"]["services"]["nginx"]["additionalModules"] == [{"name": "njs"}]


# --- the switch state: what moves traffic, in /etc -------------------------------------------

STATES = [
    pytest.param({}, id="blue"),
    pytest.param({"active": "green"}, id="green"),
    pytest.param({"active": "green", "canary": 25, "sticky": True}, id="sticky-canary"),
    pytest.param(
        {"maintenance": maintenance(status=423, retry_after_s=600, banner="Back at 14:00 UTC")},
        id="maintenance",
    ),
    pytest.param({"shadow": SHADOW, "cache": CACHE}, id="shadow-cache"),
    pytest.param({"backpressure": ALWAYS}, id="limits-always"),
    pytest.param({"backpressure": HOLD, "limits_until": 1800000000}, id="limits-hold"),
    pytest.param({"backpressure": dataclasses.replace(HOLD, rate=0)}, id="limits-off"),
    pytest.param(
        {"maintenance": maintenance(window=WINDOW, queue=QUEUE), "lease": LEASE},
        id="maintenance-window-queue",
    ),
    pytest.param(
        {
            "maintenance": maintenance(enabled=False, window=Window(None, WINDOW.end)),
            "lease": nginx.Lease(fence=12, since=1795000100, handover=30),
        },
        id="window-planned-lease",
    ),
]


@pytest.mark.integration
@pytest.mark.parametrize("case", STATES)
def test_the_state_file_is_what_switch_state_builds(nix_env, tmp_path, case):
    """bluegreen.nginx.switch_state is the one home of the state's shape: the JSON the module
    puts in /etc is the one it builds for the same inputs (the configuration's fingerprint and
    the end of the limits passed in as the local edge passes them)."""
    active, canary = case.get("active", "blue"), case.get("canary")
    defaults = live_defaults()
    inputs = {
        "sticky": case.get("sticky", False),
        "maintenance": case.get("maintenance", maintenance(enabled=False)),
        "shadow": case.get("shadow", defaults.shadow),
        "backpressure": case.get("backpressure", defaults.backpressure),
    }
    rendered = edge_config(
        active,
        TWO_BLUE,
        canary,
        cache=case.get("cache", defaults.cache),
        limits_until=case.get("limits_until"),
        lease=case.get("lease", LEASE),
        **inputs,
    )
    result = evaluate(nix_env, on_host(tmp_path, "shop-edge.nix", rendered.text))
    assert result["failedAssertions"] == []
    want = nginx.switch_state(
        conf_generation=rendered.conf,
        active=active,
        weights=weights_for(active, canary),
        versions=VERSIONS,
        limits_until=case.get("limits_until"),
        lease=case.get("lease", LEASE),
        probe_token=PROBE_TOKEN,
        **inputs,
    )
    assert state_of(result) == want and want["probe"] == PROBE_TOKEN
    assert want["generation"] == rendered.generation and want["writes"] == list(WRITE_METHODS)
    # The same fingerprint in nginx.conf: a worker of this configuration answers with the state's
    # generation, one of another with `conf-<its own>`.
    conf_map = f'map $pid $bluegreen_conf {{ default "{rendered.conf}"; }}'
    assert conf_map in directives(result["config"]["services"]["nginx"]["commonHttpConfig"])


@pytest.mark.integration
def test_the_edge_module_defaults_are_the_projects(nix_env, tmp_path):
    """The module's defaults, pinned to bluegreen/nginx.py and Pulumi.yaml, so that neither
    changes alone; a hand-written node with weights left out sends everything to the pointer."""
    body = (
        'services.bluegreen-edge = { enable = true; activeColor = "blue"; '
        'maintenance.enable = true; servers = [ { address = "10.0.0.10:8000"; color = "blue"; } '
        '{ address = "10.0.0.11:8000"; color = "green"; } ]; };'
    )
    result = evaluate(nix_env, node_file(tmp_path, "edge-node", body))
    assert result["failedAssertions"] == []
    options = result["options"]["services"]["bluegreen-edge"]
    assert (options["serverParameters"], options["keepalive"]) == (nginx.FAILOVER, nginx.KEEPALIVE)
    assert options["weights"] == {"blue": 100}
    m = maintenance()  # Pulumi.yaml's defaults
    module_m = options["maintenance"]
    assert (module_m["status"], module_m["retryAfter"], module_m["banner"]) == (
        m.status,
        m.retry_after_s,
        m.banner,
    )
    assert json.loads(module_m["body"]) == json.loads(maintenance_body(m))
    s = live_defaults()
    assert (options["cache"], options["shadow"]) == (
        {"enable": s.cache.enabled, "maxSize": s.cache.max_size_mb},
        {"percent": s.shadow.percent, "writes": s.shadow.writes},
    )
    b = s.backpressure
    assert options["limits"] == {
        "rate": b.rate,
        "burst": b.burst,
        "connections": b.connections,
        "retryAfter": b.retry_after_s,
        "until": None,
    }
    assert state_of(result)["maintenance"]["body"] == module_m["body"]
    q = s.maintenance.queue  # the queue's caps and retry horizon
    assert {p: module_m["queue"][p] for p in nginx.QUEUE_CAPS} == {
        p: getattr(q, f) for p, f in nginx.QUEUE_CAPS.items()
    }


@pytest.mark.integration
def test_the_arm_module_defaults_are_the_projects(nix_env, tmp_path):
    body = 'services.bluegreen-arm = { enable = true; color = "blue"; version = "v1"; };'
    options = evaluate(nix_env, node_file(tmp_path, "arm-node", body))["options"]
    arm = options["services"]["bluegreen-arm"]
    defaults = config.project_defaults(ROOT)
    assert (arm["port"], arm["healthPath"]) == (int(defaults["appPort"]), defaults["healthPath"])


@pytest.mark.integration
def test_a_flip_changes_the_switch_state_only(nix_env, tmp_path):
    """The rendered file changes in the pointer, the weights and the generation; evaluated, the
    nginx configuration is the same, and only the state file in /etc changes: NixOS does not
    reload nginx for it."""
    blue, green = (
        edge_config("blue", prometheus_port=19090),
        edge_config("green", prometheus_port=19090),
    )
    changed = [
        line[1:].strip()
        for line in difflib.unified_diff(blue.text.splitlines(), green.text.splitlines(), n=0)
        if line.startswith("+") and not line.startswith("+++")
    ]
    assert changed == [
        'activeColor = "green";',
        "weights = { blue = 0; green = 100; };",
        f'generation = "{green.generation}";',
    ]
    assert blue.generation != green.generation and blue.conf == green.conf
    assert edge_config("blue", prometheus_port=19090) == blue  # deterministic: no deploy

    before = evaluate(nix_env, on_host(tmp_path / "blue", "shop-edge.nix", blue.text))
    after = evaluate(nix_env, on_host(tmp_path / "green", "shop-edge.nix", green.text))
    assert before["config"]["services"]["nginx"] == after["config"]["services"]["nginx"]
    unchanged = {k: v for k, v in before["config"].items() if k != "environment"}
    assert unchanged == {k: v for k, v in after["config"].items() if k != "environment"}
    assert state_of(before)["active"] == "blue" and state_of(after)["active"] == "green"
    # Prometheus is no part of nginx.conf, nor of its fingerprint.
    assert edge_config("blue").conf == blue.conf

    # A canary step, maintenance, the shadow share and the limits' end are state as well...
    assert edge_config("green", canary=10, sticky=True).conf == blue.conf
    assert edge_config("blue", maintenance=maintenance()).conf == blue.conf
    shadowing = edge_config("blue", shadow=SHADOW)
    assert edge_config("blue", shadow=Shadow(50, False)).conf == shadowing.conf
    held = edge_config("blue", backpressure=HOLD, limits_until=1800000000)
    assert held.conf == edge_config("blue", backpressure=HOLD, limits_until=1800000300).conf
    # ...while switching a feature on is structural: nginx.conf and its fingerprint change.
    assert len({blue.conf, shadowing.conf, held.conf, edge_config("blue", cache=CACHE).conf}) == 4


@pytest.mark.integration
def test_reference_nodes_evaluate_like_the_reference_guide(nix_env):
    blue = evaluate(nix_env, os.path.join(ROOT, "nixos", "nodes", "blue.nix"))
    green = evaluate(nix_env, os.path.join(ROOT, "nixos", "nodes", "green.nix"))
    edge = evaluate(nix_env, os.path.join(ROOT, "nixos", "nodes", "edge.nix"))
    for result in (blue, green, edge):
        assert result["failedAssertions"] == []
    assert (
        "--color=blue --version=v1"
        in (blue["config"]["systemd"]["services"]["bluegreen-arm"]["serviceConfig"]["ExecStart"])
    )
    assert green["options"]["services"]["bluegreen-arm"]["color"] == "green"
    upstreams = edge["config"]["services"]["nginx"]["upstreams"]
    assert upstreams["bluegreen_shop_blue"]["servers"]["10.0.0.11:8000"] == {"backup": True}
    assert upstreams["bluegreen_shop_green"]["servers"]["10.0.0.11:8000"] == nginx.FAILOVER
    state = state_of(edge)
    assert (state["active"], state["weights"]) == ("blue", {"blue": 100, "green": 0})


@pytest.mark.integration
def test_arm_node_runs_the_pinned_version_and_opens_its_port(nix_env, tmp_path):
    result = evaluate(nix_env, on_host(tmp_path, "shop-green.nix", arm_config(version="v2.1")))
    assert result["failedAssertions"] == []
    service = result["config"]["systemd"]["services"]["bluegreen-arm"]
    assert service["serviceConfig"]["ExecStart"].split()[1:] == [
        "--color=blue",
        "--version=v2.1",
        "--host=0.0.0.0",
        "--port=8000",
        "--health-path=/healthz/ready",
    ]
    assert service["serviceConfig"]["Restart"] == "always"
    assert result["config"]["networking"]["firewall"]["allowedTCPPorts"] == [8000]


# --- the edge's Prometheus: what the hold after a flip reads ---------------------------------


def prometheus_yml(tmp_path, scrape_configs: list) -> str:
    """The config file nixpkgs' prometheus module writes for these scrapeConfigs (JSON is YAML)."""
    path = tmp_path / "prometheus.yml"
    path.write_text(json.dumps({"scrape_configs": scrape_configs}))
    return str(path)


@pytest.mark.integration
def test_the_edge_node_scrapes_both_arms_every_second(nix_env, tmp_path):
    nodes = {"blue": ["10.0.0.10:8000", "10.0.0.12:8000"], "green": ["10.0.0.11:8000"]}
    rendered = edge_config("green", nodes=nodes, prometheus_port=19191)
    result = evaluate(nix_env, on_host(tmp_path, "shop-edge.nix", rendered.text))
    assert result["failedAssertions"] == []
    prom = result["config"]["services"]["prometheus"]
    assert prom["enable"] is True and prom["port"] == 19191
    (job,) = prom["scrapeConfigs"]
    assert (job["metrics_path"], job["scrape_interval"], job["scrape_timeout"]) == (
        arm_metrics.PATH,
        "1s",
        "1s",
    )
    targets = {c["labels"]["arm"]: sorted(c["targets"]) for c in job["static_configs"]}
    assert targets == {"blue": ["10.0.0.10:8000", "10.0.0.12:8000"], "green": ["10.0.0.11:8000"]}
    # The machine that runs `bluegreen flip` reaches it: its port is open next to nginx's.
    assert result["config"]["networking"]["firewall"]["allowedTCPPorts"] == [18080, 19191]
    # Prometheus itself accepts the scrape config (1 s interval, timeout within it).
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run scripts/bootstrap (Debian's prometheus)"
    check = subprocess.run(
        [promtool, "check", "config", prometheus_yml(tmp_path, prom["scrapeConfigs"])],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.integration
def test_with_a_prometheus_of_ones_own_the_edge_node_runs_none(nix_env, tmp_path):
    rendered = edge_config("blue", prometheus_port=None)
    result = evaluate(nix_env, on_host(tmp_path, "shop-edge.nix", rendered.text))
    assert result["failedAssertions"] == []
    assert "prometheus" not in result["config"]["services"]
    assert result["config"]["networking"]["firewall"]["allowedTCPPorts"] == [18080]


@pytest.mark.integration
def test_the_edge_modules_prometheus_defaults_are_the_projects(nix_env, tmp_path):
    body = (
        'services.bluegreen-edge = { enable = true; activeColor = "blue"; '
        "prometheus.enable = true; servers = [ "
        '{ address = "10.0.0.10:8000"; color = "blue"; } ]; };'
    )
    result = evaluate(nix_env, node_file(tmp_path, "edge-node", body))
    port = result["options"]["services"]["bluegreen-edge"]["prometheus"]["port"]
    assert port == int(config.project_defaults(ROOT)["prometheusPort"])
    assert result["config"]["services"]["prometheus"]["port"] == port


@pytest.mark.integration
def test_the_app_package_runs_a_python_with_prometheus_client(nix_env):
    """The app imports prometheus_client (its /metrics): the script must exec a Python built
    with it. The stand-in python3 names in its path the packages it was built with."""
    with open(os.path.join(ROOT, "app", "server.py")) as f:
        assert "from prometheus_client import" in f.read()
    expr = (
        f"(import {ROOT}/nixos/pkgs/bluegreen-app.nix {{ "
        'python3 = { outPath = "/python3"; withPackages = f: { outPath = "/python3-with-" + '
        'builtins.concatStringsSep "+" (f { prometheus-client = "prometheus-client"; }); }; }; '
        "writeShellScriptBin = name: text: { inherit name text; }; }).text"
    )
    done = nix(nix_env, "--eval", "--strict", "--json", "-E", expr)
    assert done.returncode == 0, done.stderr
    script = json.loads(done.stdout)
    assert script.split()[:2] == ["exec", "/python3-with-prometheus-client/bin/python3"], script


# --- the modules' assertions -----------------------------------------------------------------


def servers_nix(blue: int, green: int, green_address: str = "10.0.0.11:8000") -> str:
    return (
        f'servers = [ {{ address = "10.0.0.10:8000"; color = "blue"; }} '
        f'{{ address = "{green_address}"; color = "green"; }} ]; '
        f"weights = {{ blue = {blue}; green = {green}; }};"
    )


@pytest.mark.parametrize(
    ("active", "servers", "message"),
    [
        (
            "blue",
            servers_nix(0, 0),
            "services.bluegreen-edge.weights: no arm of services.bluegreen-edge.servers has a\n"
            "weight above 0",
        ),
        (
            "green",
            servers_nix(100, 0),
            "services.bluegreen-edge.activeColor is green, but green has\nno weight above 0",
        ),
        (
            "blue",
            servers_nix(60, 30),
            "the arms' weights must add up to 100, got\nblue 60 + green 30",
        ),
        (
            "blue",
            servers_nix(100, 0, green_address="10.0.0.10:8000"),
            "services.bluegreen-edge.servers lists an address more than once",
        ),
        (
            "blue",
            'servers = [ { address = "10.0.0.10:8000"; color = "blue"; } ]; '
            "weights = { blue = 75; green = 25; };",
            "one weight per arm of services.bluegreen-edge.servers\n(blue), got one for\ngreen",
        ),
    ],
)
@pytest.mark.integration
def test_edge_refuses_bad_combinations(nix_env, tmp_path, active, servers, message):
    node = node_file(
        tmp_path,
        "edge-node",
        f'services.bluegreen-edge = {{ enable = true; activeColor = "{active}"; {servers} }};',
    )
    failed = evaluate(nix_env, node)["failedAssertions"]
    assert any(message in m for m in failed), failed


@pytest.mark.integration
def test_a_canary_split_passes_the_edge_assertions(nix_env, tmp_path):
    node = node_file(
        tmp_path,
        "edge-node",
        f'services.bluegreen-edge = {{ enable = true; activeColor = "green"; '
        f"{servers_nix(75, 25)} }};",
    )
    result = evaluate(nix_env, node)
    assert result["failedAssertions"] == []
    assert state_of(result)["weights"] == {"blue": 75, "green": 25}


@pytest.mark.integration
def test_arm_refuses_an_open_firewall_on_loopback(nix_env, tmp_path):
    node = node_file(
        tmp_path,
        "arm-node",
        'services.bluegreen-arm = { enable = true; color = "blue"; version = "v1"; '
        'listenAddress = "127.0.0.1"; };',
    )
    failed = evaluate(nix_env, node)["failedAssertions"]
    assert any(
        "services.bluegreen-arm.openFirewall is true but services.bluegreen-arm.listenAddress" in m
        for m in failed
    ), failed


@pytest.mark.integration
def test_a_required_option_left_out_is_named(nix_env, tmp_path):
    node = node_file(
        tmp_path, "arm-node", 'services.bluegreen-arm = { enable = true; color = "blue"; };'
    )
    assert "services.bluegreen-arm.version' is used but not defined" in evaluation_error(
        nix_env, node
    )


# --- injection -------------------------------------------------------------------------------

EVIL = [
    'v1"; services.openssh.enable = false; "',
    '${builtins.abort "injected"}',
    "v1; }",
    "v1 } location / { return 200",
    "back\\slash\\",
    "$${x} $ {",
    "line\nbreak\r\ttab",
]


@pytest.mark.integration
@pytest.mark.parametrize("value", EVIL)
def test_a_nix_string_evaluates_to_exactly_its_value(nix_env, value):
    done = nix(nix_env, "--eval", "--json", "-E", render.nix_string(value))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == value


@pytest.mark.parametrize("value", EVIL)
def test_the_renderer_refuses_what_could_break_out(value):
    with pytest.raises(ValueError, match="refusing to render"):
        arm_config(version=value)
    with pytest.raises(ValueError, match="refusing to render"):
        arm_config(node=value)
    with pytest.raises(ValueError, match="refusing to render"):
        edge_config(nodes={"blue": [value], "green": ["10.0.0.11:8000"]})
    with pytest.raises(ValueError, match="refusing to render"):
        edge_config(versions={"blue": value, "green": "v2"})
    with pytest.raises(ValueError, match="refusing to render"):
        render.file_name(value, "blue")


@pytest.mark.parametrize("address", ["10.0.0.10:8000 backup", "10.0.0.10", "[fd00::1]:80;"])
def test_an_upstream_address_must_be_exactly_host_and_port(address):
    with pytest.raises(ValueError, match="refusing to render"):
        edge_config(nodes={"blue": [address], "green": ["10.0.0.11:8000"]})


@pytest.mark.integration
@pytest.mark.parametrize(
    ("module", "body"),
    [
        ("arm-node", 'color = "blue"; version = "v1; }";'),
        ("arm-node", 'color = "blue"; version = "v1"; healthPath = "/ready; return 200";'),
        ("arm-node", 'color = "blue"; version = "v1"; extraArgs = [ "--x=1 --y" ];'),
        ("edge-node", 'activeColor = "blue"; ' + servers_nix(100, 0, "10.0.0.11:8000 down")),
        ("edge-node", 'activeColor = "blue"; generation = "\\"; x"; ' + servers_nix(100, 0)),
        ("edge-node", 'activeColor = "blue"; versions.blue = "v1 } x"; ' + servers_nix(100, 0)),
        ("edge-node", 'activeColor = "blue"; upstreamPrefix = "a b"; ' + servers_nix(100, 0)),
        ("edge-node", 'activeColor = "blue"; ' + servers_nix(101, 0)),
    ],
)
def test_modules_refuse_values_that_would_inject_into_nginx_or_systemd(
    nix_env, tmp_path, module, body
):
    service = "bluegreen-arm" if module == "arm-node" else "bluegreen-edge"
    node = node_file(tmp_path, module, f"services.{service} = {{ enable = true; {body} }};")
    assert "is not of type" in evaluation_error(nix_env, node)


# --- the edge for real: nginx as the module describes it -------------------------------------


def nginx_conf(result: dict, prefix, listen: str) -> str:
    """nginx.conf as nixpkgs' nginx module writes it for this node, in its order: upstreams,
    commonHttpConfig, then each virtual host with its locations (`proxy_pass`, then
    `extraConfig`). nixpkgs builds njs into nginx; Debian's nginx loads it as a module. What the
    node has elsewhere is in `prefix` here: the state file the module puts in /etc, the cache
    directory under /var/cache/nginx, and switch.js, imported from its store path."""
    nginx_cfg = result["config"]["services"]["nginx"]
    out = []
    if {"name": "njs"} in nginx_cfg.get("additionalModules", []):
        module = js_module()
        assert module, "Debian's libnginx-mod-http-js is not installed: run scripts/bootstrap"
        out.append(f"load_module {module};")
    if os.geteuid() == 0:
        out.append("user root;")  # workers as nobody could not read the test's files
    out += [
        f"pid {prefix}/nginx.pid;",
        f"error_log {prefix}/error.log;",
        "events { worker_connections 64; }",
        "http {",
        f"client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;",
        f"fastcgi_temp_path {prefix}/fastcgi; uwsgi_temp_path {prefix}/uwsgi;",
        f"scgi_temp_path {prefix}/scgi; access_log off;",
    ]
    for name, servers in upstream_lines(nginx_cfg).items():
        out.append(f"upstream {name} {{")
        out += [f"server {a} {' '.join(sorted(p))};" for a, p in servers.items()]
        out += [nginx_cfg["upstreams"][name]["extraConfig"], "}"]
    out.append(nginx_cfg.get("commonHttpConfig", ""))
    for vhost in nginx_cfg["virtualHosts"].values():
        out += ["server {", f"listen {listen};"]
        for location, body in sorted(vhost["locations"].items()):
            out.append(f"location {location} {{")
            if body.get("proxyPass"):
                out.append(f"proxy_pass {body['proxyPass']};")
            out += [body.get("extraConfig", ""), "}"]
        out.append("}")
    out.append("}")
    text = "\n".join(out) + "\n"
    for there, here in [
        (f"/etc/{STATE}", prefix / "switch.json"),
        (LEASE_DIR, prefix / "lease"),
        ("/var/cache/nginx/bluegreen", prefix / "cache"),
        (js_import(nginx_cfg), prefix / "switch.js"),
    ]:
        text = text.replace(there, str(here))
    return text


def free_port() -> int:
    return free_ports(1)[0]


ARM_VERSIONS = {"blue": "blue-v1", "green": "green-v1"}


@pytest.fixture
def live_edge(nix_env, tmp_path):
    """Two reference arms and nginx on loopback, configured from the evaluated edge node the
    adapter renders (green live unless told), with the switch state the module puts in /etc.
    `live_edge.switch(...)` renders and evaluates the node again and, as `nixos-rebuild switch`
    does when nginx.conf is unchanged, replaces the state file only (atomically)."""
    started: list[subprocess.Popen] = []
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    edge: dict = {}

    def evaluated(config: render.EdgeConfig) -> dict:
        node = on_host(tmp_path / f"host-{config.generation}", "shop-edge.nix", config.text)
        result = evaluate(nix_env, node)
        assert result["failedAssertions"] == []
        return result

    def write_state(result: dict) -> None:
        (prefix / "switch.json.next").write_text(
            result["config"]["environment"]["etc"][STATE]["text"]
        )
        os.replace(prefix / "switch.json.next", prefix / "switch.json")
        # What activation does next on the host, after /etc: stamp the lease's fence.
        script = result["config"]["system"]["activationScripts"]["bluegreen-edge-lease"]
        assert script["deps"] == ["etc"]
        text = script["text"].replace(LEASE_DIR, str(prefix / "lease"))
        subprocess.run(["sh", "-euc", text], check=True)

    def start(active: str = "green", **kw) -> tuple[str, render.EdgeConfig]:
        ports = {"blue": free_port(), "green": free_port()}
        for color, port in ports.items():
            started.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        os.path.join(ROOT, "app", "server.py"),
                        f"--color={color}",
                        f"--version={ARM_VERSIONS[color]}",
                        "--host=127.0.0.1",
                        f"--port={port}",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            answer, _ = probe.wait_until(
                f"http://127.0.0.1:{port}/healthz/ready", lambda a: a.status == 200, 10
            )
            assert answer.status == 200, answer.describe()
        edge["nodes"] = {c: [f"127.0.0.1:{p}"] for c, p in ports.items()}
        edge["listen"] = f"127.0.0.1:{free_port()}"
        config = edge_config(active, nodes=edge["nodes"], versions=ARM_VERSIONS, **kw)
        result = evaluated(config)
        conf.write_text(nginx_conf(result, prefix, edge["listen"]))
        (prefix / "switch.js").write_text(nginx.SWITCH_JS)
        write_state(result)
        check = subprocess.run(
            [nginx_bin, "-t", "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stderr + conf.read_text()
        subprocess.run([nginx_bin, "-p", str(prefix), "-c", str(conf)], check=True)
        url = f"http://{edge['listen']}"
        answer, _ = probe.wait_until(url + "/", lambda a: a.status is not None, 10)
        assert answer.status is not None, answer.describe()
        return url, config

    def switch(active: str, **kw) -> render.EdgeConfig:
        config = edge_config(active, nodes=edge["nodes"], versions=ARM_VERSIONS, **kw)
        result = evaluated(config)
        assert nginx_conf(result, prefix, edge["listen"]) == conf.read_text(), "not a state change"
        write_state(result)
        return config

    start.switch = switch
    start.prefix = prefix
    yield start
    try:
        os.kill(int((prefix / "nginx.pid").read_text()), signal.SIGQUIT)
    except (OSError, ValueError):
        pass
    for proc in started:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.integration
def test_maintenance_refuses_writes_and_serves_reads(live_edge):
    banner = "Read-only until 14:00 UTC (database upgrade)"
    url, config = live_edge(maintenance=maintenance(banner=banner))
    read = probe.request(url + "/")
    assert read.status == 200 and read.color == "green", read.describe()
    assert read.headers["x-bluegreen-edge-generation"] == config.generation
    assert read.headers["x-bluegreen-banner"] == banner
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        write = probe.request(url + "/orders", method=method, body=b"{}")
        assert write.status == 503, f"{method}: {write.describe()}"
        assert write.color is None, f"{method} reached the {write.color} arm"
        assert write.headers["retry-after"] == "30", method
        assert write.headers["content-type"] == "application/json", method
        assert write.headers["x-bluegreen-banner"] == banner, method
        # Byte for byte the answer the local platform's edge gives.
        assert write.body.decode() == maintenance_body(maintenance()), method
    health = probe.request(url + "/healthz/edge")
    assert health.status == 200 and health.headers["x-bluegreen-edge"] == "green"
    assert health.json() == {
        "status": "ok",
        "activeColor": "green",
        "weights": {"blue": 0, "green": 100},
        "readOnly": True,
        "generation": config.generation,
    }


@pytest.mark.integration
def test_maintenance_can_answer_423_locked(live_edge):
    url, _ = live_edge(maintenance=maintenance(status=423, retry_after_s=600))
    write = probe.request(url + "/orders", method="POST", body=b"{}")
    assert write.status == 423 and write.headers["retry-after"] == "600"
    assert write.json()["status"] == 423
    assert probe.request(url + "/").status == 200


@pytest.mark.integration
def test_without_maintenance_writes_reach_the_live_arm(live_edge):
    url, _ = live_edge()
    write = probe.request(url + "/orders", method="POST", body=b"{}")
    assert write.status == 200 and write.color == "green", write.describe()
    assert "retry-after" not in write.headers and "x-bluegreen-banner" not in write.headers


@pytest.mark.integration
def test_a_sticky_canary_keeps_each_client_on_one_arm(live_edge):
    url, _ = live_edge(canary=50, sticky=True)
    colors = set()
    for _ in range(20):  # all 20 on one arm by chance: 1 run in 500,000
        first = probe.request(url + "/")
        cookie = first.headers["set-cookie"].split(";")[0]
        assert cookie.startswith("bluegreen_client="), first.headers
        again = {probe.request(url + "/", headers={"Cookie": cookie}).color for _ in range(5)}
        assert again == {first.color}, f"{cookie} moved between arms: {again}"
        colors.add(first.color)
    assert colors == {"blue", "green"}, "a 50/50 canary sent every new client to one arm"


@pytest.mark.integration
def test_a_flip_moves_traffic_on_a_kept_alive_connection_without_a_reload(live_edge):
    """What NixOS does on a flip (a new state file in /etc, the same nginx.conf) moves the next
    request, even on a connection that was open before: nginx is not reloaded, so nothing closes
    it. Back again, the same."""
    url, blue = live_edge("blue")
    master = (live_edge.prefix / "nginx.pid").read_text()
    host_name, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host_name, int(port), timeout=10)

    def get() -> tuple[str | None, str | None]:
        connection.request("GET", "/")
        answer = connection.getresponse()
        answer.read()
        return answer.getheader("x-bluegreen-color"), answer.getheader(
            "x-bluegreen-edge-generation"
        )

    try:
        assert get() == ("blue", blue.generation)
        kept = connection.sock
        green = live_edge.switch("green")
        assert get() == ("green", green.generation)
        assert live_edge.switch("blue") == blue
        assert get() == ("blue", blue.generation)
        assert connection.sock is kept, "the connection was closed: nginx reloaded"
    finally:
        connection.close()
    assert (live_edge.prefix / "nginx.pid").read_text() == master


@pytest.mark.integration
def test_the_limits_of_a_hold_apply_until_it_ends(live_edge):
    """With limitWhen "hold", the limits end at limits.until: the same nginx, a new state."""
    hold = Backpressure(rate=1, burst=0, connections=0, retry_after_s=7, when="hold", hold_s=300)
    url, _ = live_edge("green", backpressure=hold, limits_until=int(time.time()) + 300)
    answers = [probe.request(url + "/") for _ in range(5)]
    refused = [a for a in answers if a.status == 429]
    assert refused and refused[0].headers["retry-after"] == "7", [a.status for a in answers]
    assert refused[0].color is None
    # bluegreen's own probes are never counted: a flip's confirmation gets through; a client
    # that sends the header without the edge's token is limited like any other.
    assert probe.request(url + "/", headers={probe.PROBE_HEADER: PROBE_TOKEN}).status == 200
    assert probe.request(url + "/", headers={probe.PROBE_HEADER: "confirm"}).status == 429
    live_edge.switch("green", backpressure=hold, limits_until=int(time.time()) - 1)
    assert [probe.request(url + "/").status for _ in range(5)] == [200] * 5


@pytest.mark.integration
def test_the_edge_serves_with_every_feature_on(live_edge):
    """The edge cache, shadow traffic and both limits at once: nginx accepts what the module
    says, and answers through the cache from the live arm."""
    url, config = live_edge(cache=CACHE, shadow=SHADOW, backpressure=ALWAYS)
    first, again = probe.request(url + "/"), probe.request(url + "/")
    for answer in (first, again):
        assert answer.status == 200 and answer.color == "green", answer.describe()
        assert answer.headers["x-bluegreen-edge-generation"] == config.generation
        assert answer.headers["x-bluegreen-cache"] in ("MISS", "HIT", "BYPASS", "EXPIRED")
    # An arm's own documents are not public.
    assert probe.request(url + "/_arm/writes").status == 404


# --- the deploy ------------------------------------------------------------------------------

TARGET = ssh_deploy.Target(
    host="10.0.0.10",
    user="root",
    port=2222,
    known_hosts="/repo/.bluegreen/blue/known_hosts",
)
SSH = [
    "ssh",
    "-i",
    "/tmp/k/id",
    "-p",
    "2222",
    "-o",
    "StrictHostKeyChecking=accept-new",
    "-o",
    "UserKnownHostsFile=/repo/.bluegreen/blue/known_hosts",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "ConnectTimeout=15",
    "root@10.0.0.10",
]


def test_the_deploy_is_a_copy_then_a_switch_over_ssh():
    copy, switch = ssh_deploy.deploy_commands(TARGET, "/tmp/k/id", "nixos-rebuild")
    assert copy == SSH + [ssh_deploy.copy_script("/etc/nixos/bluegreen")]
    assert switch == SSH + ["nixos-rebuild switch"]
    assert "d=/etc/nixos/bluegreen;" in copy[-1] and 'tar -x -f - -C "$t"' in copy[-1]


def test_the_remote_commands_quote_what_they_are_given():
    copy, switch = ssh_deploy.deploy_commands(
        ssh_deploy.Target("h", "root", 22, "/k/known_hosts", remote_dir="/etc/nixos/x y"),
        "/k/id",
        "/run/current system/bin/rebuild",
    )
    assert "d='/etc/nixos/x y';" in copy[-1]
    assert switch[-1] == "'/run/current system/bin/rebuild' switch"
    with pytest.raises(ssh_deploy.DeployError, match="no spaces"):
        ssh_deploy.ssh_command(
            ssh_deploy.Target("h", "root", 22, "/my dir/known_hosts"), "/k/id", "true"
        )


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


@pytest.fixture
def ssh_calls(monkeypatch, tmp_path) -> list[tuple[list[str], bytes | None]]:
    """Every ssh command a deploy runs, answered with success and never sent anywhere."""
    calls: list[tuple[list[str], bytes | None]] = []

    def fake_run(argv, stdin):
        key = argv[argv.index("-i") + 1]
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600  # the key exists, private, during ssh
        calls.append((argv, stdin))
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    monkeypatch.setattr(ssh_deploy, "run", fake_run)
    monkeypatch.setattr(ssh_deploy.tempfile, "tempdir", str(tmp_path))
    return calls


def test_a_change_deploys_and_no_change_deploys_nothing(ssh_calls, tmp_path):
    provider = host.HostProvider()
    first = props(arm_config(version="v1"))
    created = provider.create(first)
    assert [c[0][-1] for c in ssh_calls] == [
        ssh_deploy.copy_script("/etc/nixos/bluegreen"),
        "nixos-rebuild switch",
    ]
    with tarfile.open(fileobj=io.BytesIO(ssh_calls[0][1])) as tar:
        assert sorted(tar.getnames()) == ["nixos/modules/arm-node.nix", "shop-blue.nix"]
        assert tar.extractfile("shop-blue.nix").read().decode() == first["config"]
    assert not list(tmp_path.glob("bluegreen-ssh-*")), "the key outlived the deploy"

    # The same config again: the engine is told there is nothing to do...
    assert provider.diff("id", created.outs, props(arm_config(version="v1"))).changes is False
    # ...and even an update (the key rotated) does not switch the host.
    rotated = props(arm_config(version="v1"), sshKey="another key")
    assert provider.diff("id", created.outs, rotated).changes is True
    provider.update("id", created.outs, rotated)
    assert len(ssh_calls) == 2

    # A new version is a change, deployed as a copy and a switch.
    second = props(arm_config(version="v2"))
    diff = provider.diff("id", created.outs, second)
    assert diff.changes is True and not diff.replaces
    updated = provider.update("id", created.outs, second)
    assert [c[0][-1] for c in ssh_calls[2:]] == [
        ssh_deploy.copy_script("/etc/nixos/bluegreen"),
        "nixos-rebuild switch",
    ]
    assert updated.outs["digest"] != created.outs["digest"]


def test_another_host_is_a_replacement(ssh_calls):
    provider = host.HostProvider()
    created = provider.create(props(arm_config()))
    assert provider.diff("id", created.outs, props(arm_config(), host="10.0.0.12")).replaces == [
        "host"
    ]


@pytest.mark.integration
def test_destroy_leaves_an_empty_module_the_host_can_still_import(ssh_calls, nix_env, tmp_path):
    provider = host.HostProvider()
    provider.delete("id", props(arm_config()))
    with tarfile.open(fileobj=io.BytesIO(ssh_calls[0][1])) as tar:
        assert tar.getnames() == ["shop-blue.nix"]
        (tmp_path / "tombstone.nix").write_bytes(tar.extractfile("shop-blue.nix").read())
    assert ssh_calls[1][0][-1] == "nixos-rebuild switch"
    assert nix(nix_env, "--parse", str(tmp_path / "tombstone.nix")).returncode == 0


@pytest.mark.integration
def test_a_switch_that_does_not_serve_is_switched_back(ssh_calls):
    provider = host.HostProvider()
    created = provider.create(props(arm_config(version="v1")))
    # Nothing listens on this loopback port: the new version never answers.
    confirm = {
        "url": f"http://127.0.0.1:{free_port()}/healthz/ready",
        "headers": {"x-bluegreen-version": "v2"},
        "timeoutSeconds": 0.3,
    }
    with pytest.raises(ssh_deploy.DeployError, match="switched back to and keeps serving"):
        provider.update("id", created.outs, props(arm_config(version="v2"), confirm=confirm))
    tars = [c[1] for c in ssh_calls[2:] if c[1] is not None]
    assert len(tars) == 2  # the new files, then the previous ones again
    with tarfile.open(fileobj=io.BytesIO(tars[1])) as tar:
        assert 'version = "v1";' in tar.extractfile("shop-blue.nix").read().decode()
    assert [c[0][-1] for c in ssh_calls].count("nixos-rebuild switch") == 3


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


def test_a_hold_limits_the_edge_for_its_seconds_after_traffic_moves(ssh_calls, monkeypatch):
    """limitWhen "hold": the host sets limits.until to the time traffic moved plus
    limitHoldSeconds, keeps it while traffic stays (no change, no deploy), and moves it with the
    next flip, as the local edge does."""
    provider = host.EdgeHostProvider()
    monkeypatch.setattr(host.time, "time", lambda: 1_000.25)
    created = provider.create(edge_props("blue")).outs
    assert created["limitsUntil"] == 1_301  # 1000.25 + 300, whole seconds up
    assert deployed_file(ssh_calls[0]) == created["config"]
    assert "limits.until = 1301;" in created["config"]
    lease = nginx.Lease(fence=1, since=1_000.0, handover=5)
    want = edge_config(
        "blue", backpressure=HOLD, limits_until=1_301, prometheus_port=19090, lease=lease
    )
    assert (created["config"], created["generation"]) == (want.text, want.generation)

    monkeypatch.setattr(host.time, "time", lambda: 2_000.0)
    assert provider.diff("id", created, edge_props("blue")).changes is False
    same = provider.update("id", created, edge_props("blue")).outs
    assert len(ssh_calls) == 2  # nothing was deployed
    assert (same["limitsUntil"], same["generation"]) == (1_301, created["generation"])

    assert provider.diff("id", created, edge_props("green")).changes is True
    flipped = provider.update("id", created, edge_props("green")).outs
    assert flipped["limitsUntil"] == 2_300 and "limits.until = 2300;" in deployed_file(ssh_calls[2])
    # The pointer moved: the writer lease's fence grows, from the time of this apply.
    assert flipped["lease"] == {"color": "green", "fence": 2, "since": 2_000, "handover": 5}
    lease = nginx.Lease(fence=2, since=2_000.0, handover=5)
    want = edge_config(
        "green", backpressure=HOLD, limits_until=2_300, prometheus_port=19090, lease=lease
    )
    assert flipped["generation"] == want.generation


def test_the_edge_hosts_probe_token_is_made_once_kept_and_secret(ssh_calls, monkeypatch):
    """A new edge gets a token of its own; every later render keeps it (a new random one would
    lock out what holds it), and it is secret in the state, with the file that carries it."""
    provider = host.EdgeHostProvider()
    created = provider.create(edge_props("blue")).outs
    assert created["probeToken"] == PROBE_TOKEN
    assert f'probeToken = "{PROBE_TOKEN}";' in created["config"]
    monkeypatch.setattr(nginx, "new_token", lambda: "f" * 32)
    flipped = provider.update("id", created, edge_props("green")).outs
    assert flipped["probeToken"] == PROBE_TOKEN and f'"{PROBE_TOKEN}"' in flipped["config"]
    assert {"config", "probeToken", "sshKey"} <= set(provider.secret_outputs)
    assert set(host.HostProvider.secret_outputs) == {"sshKey"}  # an arm's file holds no secret


@pytest.fixture
def fake_edge(ssh_calls):
    """An edge on loopback that serves what the last deployed file says (its lease, its colour
    and generation), or, while `broken`, the wrong generation: a switch that is not confirmed."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            text = deployed_file([c for c in ssh_calls if c[1] is not None][-1])
            color = re.search(r'activeColor = "([a-z]+)";', text).group(1)
            fence = int(re.search(r"fence = ([0-9]+);", text).group(1))
            generation = re.search(r'generation = "([0-9a-f]+)";', text).group(1)
            doc = {"holder": color, "fence": fence, "since": 0, "handover": 5, "now": 1}
            self.send_response(200)
            self.send_header("X-Bluegreen-Color", color)
            self.send_header("X-Bluegreen-Edge-Generation", "old" if edge.broken else generation)
            self.end_headers()
            self.wfile.write(json.dumps(doc if self.path == nginx.LEASE_PATH else {}).encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    edge = types.SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}/", broken=False)
    yield edge
    server.shutdown()
    thread.join(5)


@pytest.mark.integration
def test_a_failed_switch_never_lowers_the_fence_the_edge_serves(ssh_calls, fake_edge):
    """The edge may have served the failed switch's fence, so the previous holder comes back
    with a higher one; and the next switch goes on from the fence the edge serves, which
    Pulumi did not record (the failed update kept its previous outputs)."""
    provider = host.EdgeHostProvider()
    confirm = {"url": fake_edge.url, "headers": {}, "timeoutSeconds": 0.3}

    def edge(active: str) -> dict:
        return {**edge_props(active), "confirm": confirm}

    created = provider.create(edge("blue")).outs
    assert created["lease"]["fence"] == 1
    fake_edge.broken = True
    with pytest.raises(ssh_deploy.DeployError, match="switched back to"):
        provider.update("id", created, edge("green"))
    tried, restored = (deployed_file(c) for c in ssh_calls[-4::2])
    assert 'activeColor = "green";' in tried and "fence = 2;" in tried
    assert 'activeColor = "blue";' in restored and "fence = 3;" in restored
    fake_edge.broken = False
    moved = provider.update("id", created, edge("green")).outs
    assert moved["lease"]["fence"] == 4 and "fence = 4;" in deployed_file(ssh_calls[-2])


@pytest.mark.parametrize(
    ("backpressure", "until"),
    [
        (ALWAYS, None),  # the limits always apply
        (dataclasses.replace(HOLD, rate=0), None),  # there are none
    ],
)
def test_without_a_hold_the_limits_have_no_end(ssh_calls, backpressure, until):
    created = host.EdgeHostProvider().create(edge_props("blue", backpressure)).outs
    assert created["limitsUntil"] is until and "limits.until = null;" in created["config"]


def test_choosing_hold_without_moving_traffic_ends_the_limits(ssh_calls):
    """From "always" to "hold" while the pointer stays: the limits have ended (until 0), and
    the next change that moves traffic starts a hold."""
    provider = host.EdgeHostProvider()
    created = provider.create(edge_props("blue", ALWAYS)).outs
    held = provider.update(
        "id", created, edge_props("blue", dataclasses.replace(ALWAYS, when="hold"))
    )
    assert held.outs["limitsUntil"] == 0 and "limits.until = 0;" in held.outs["config"]


# --- the adapter under Pulumi mocks ----------------------------------------------------------


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.created: dict[str, pulumi.runtime.MockResourceArgs] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.created[args.name] = args
        state = {**args.inputs, "digest": "d"}
        if args.inputs.get("edge"):  # what EdgeHostProvider computes on create
            state = {**host.EdgeHostProvider().prepare(state, None)[0], "digest": "d"}
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@pytest.fixture
def mocks():
    m = Mocks()
    pulumi.runtime.set_mocks(m, project="bluegreen", stack="blue", preview=False)
    pulumi.runtime.set_all_config({"bluegreen:sshKey": "PRIVATE"}, ["bluegreen:sshKey"])
    yield m
    pulumi.runtime.set_all_config({}, [])


def nixos_settings(name: str, **values):
    return stack(name, platform="nixos", **values)


@pulumi.runtime.test
def test_an_arm_stack_deploys_one_host_per_node(mocks):
    s = nixos_settings(
        "blue", role="arm", color="blue", version="v3", nodes='["10.0.0.10", "10.0.0.12"]'
    )
    s.preflight()
    arm = s.platform.arm("blue", None, s.settings)

    def check(args):
        endpoint, nodes = args
        assert endpoint == "http://10.0.0.10:8000"
        assert nodes == ["10.0.0.10:8000", "10.0.0.12:8000"]
        for node in ("10.0.0.10", "10.0.0.12"):
            res = mocks.created[f"blue-{node}"]
            assert res.typ == "pulumi-python:dynamic/nixos:Host", res.name
            assert res.inputs["host"] == node and res.inputs["fileName"] == "shop-blue.nix"
            assert res.inputs["knownHosts"] == "/repo/.bluegreen/blue/known_hosts"
            assert res.inputs["config"] == render.arm_node(
                stack="blue",
                node=node,
                color="blue",
                version="v3",
                port=8000,
                health_path="/healthz/ready",
            ), res.name
            key = res.inputs["sshKey"]  # sent to the engine marked secret, never in clear
            assert rpc.is_rpc_secret(key) and rpc.unwrap_rpc_secret(key) == "PRIVATE", res.name
            assert set(res.inputs["bundle"]) == set(bundle.files())

    return pulumi.Output.all(arm.endpoint, arm.nodes).apply(check)


@pulumi.runtime.test
def test_the_live_stack_renders_the_edge_from_the_arms_nodes(mocks):
    from platforms.base import ArmView

    s = nixos_settings("live", role="edge", activeColor="green", edgeNode="10.0.0.2")
    arms = {
        c: ArmView(c, f"http://{n[0]}", "v1", n, pulumi.Output.from_input({}))
        for c, n in NODES.items()
    }
    edge = s.platform.edge("live", None, s.settings, arms)
    # Pulumi.yaml's prometheusPort; both arms report v1.
    want = edge_config("green", prometheus_port=19090, versions={"blue": "v1", "green": "v1"})

    def check(args):
        url, generation = args
        res = mocks.created["live-10.0.0.2"].inputs
        assert url == "http://10.0.0.2:18080/"
        assert res["fileName"] == "shop-edge.nix"
        # The host renders the file from the edge's settings (EdgeHostProvider)...
        assert res["edge"]["nodes"] == NODES and res["edge"]["weights"] == {"green": 100, "blue": 0}
        prepared, confirm = host.EdgeHostProvider().prepare(res, None)
        assert prepared["config"] == want.text and generation == want.generation
        # ...and counts the switch once the edge answers with its state's generation.
        assert res["confirm"]["headers"] == {"x-bluegreen-color": "green"}
        assert confirm["headers"] == {
            "x-bluegreen-edge-generation": want.generation,
            "x-bluegreen-color": "green",
        }
        assert set(res["bundle"]) == set(bundle.files())

    return pulumi.Output.all(edge.url, edge.generation).apply(check)


@pytest.mark.integration
def test_a_switch_counts_once_the_node_answers_as_expected(tmp_path):
    port = free_port()
    app = subprocess.Popen(
        [
            sys.executable,
            os.path.join(ROOT, "app", "server.py"),
            "--color=blue",
            "--version=v2",
            "--host=127.0.0.1",
            f"--port={port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/healthz/ready"
        ok, seen = host.confirmed(
            {"url": url, "headers": {"x-bluegreen-version": "v2"}, "timeoutSeconds": 10}
        )
        assert ok, seen
        ok, seen = host.confirmed(
            {"url": url, "headers": {"x-bluegreen-version": "v3"}, "timeoutSeconds": 0.3}
        )
        assert (
            not ok
            and "x-bluegreen-version: v2" in seen
            and "expected x-bluegreen-version: v3" in seen
        )
    finally:
        app.terminate()
        app.wait(timeout=10)


def test_the_rebuild_command_may_be_an_absolute_path_but_nothing_the_shell_reads():
    s = nixos_settings(
        "blue",
        role="arm",
        color="blue",
        version="v1",
        nodes='["10.0.0.10"]',
        nixosRebuild="/run/current-system/sw/bin/nixos-rebuild",
    )
    assert s.platform.ssh.rebuild == "/run/current-system/sw/bin/nixos-rebuild"
    with pytest.raises(
        ValueError, match='bluegreen:nixosRebuild must be a command path, got "nixos'
    ):
        nixos_settings(
            "blue",
            role="arm",
            color="blue",
            version="v1",
            nodes='["10.0.0.10"]',
            nixosRebuild="nixos-rebuild; rm -rf /",
        )


V1 = {"blue": "v1", "green": "v1"}


def edge_text(mocks) -> str:
    """The edge node's file as the host renders it on create."""
    return host.EdgeHostProvider().prepare(mocks.created["live-10.0.0.2"].inputs, None)[0]["config"]


def nixos_arms():
    from platforms.base import ArmView

    return {
        c: ArmView(c, f"http://{n[0]}", "v1", n, pulumi.Output.from_input({}))
        for c, n in NODES.items()
    }


@pulumi.runtime.test
def test_the_live_stack_points_the_hold_at_the_edge_nodes_prometheus(mocks):
    s = nixos_settings(
        "live", role="edge", activeColor="green", edgeNode="10.0.0.2", prometheusPort="19191"
    )
    edge = s.platform.edge("live", None, s.settings, nixos_arms())

    def check(source):
        assert source == {
            "source": "prometheus",
            "url": "http://10.0.0.2:19191",
            "queries": arm_metrics.APP_QUERIES,
            "selectors": {"blue": 'color="blue"', "green": 'color="green"'},
        }
        assert edge_text(mocks) == edge_config("green", prometheus_port=19191, versions=V1).text

    return pulumi.Output.from_input(edge.metrics).apply(check)


@pulumi.runtime.test
def test_a_prometheus_url_of_ones_own_replaces_the_edge_nodes(mocks):
    s = nixos_settings(
        "live",
        role="edge",
        activeColor="blue",
        edgeNode="10.0.0.2",
        prometheusUrl="https://prometheus.example.com/",
        promqlP95="max(my_p95_seconds{$selector}[$window])",
    )
    edge = s.platform.edge("live", None, s.settings, nixos_arms())

    def check(source):
        assert source["url"] == "https://prometheus.example.com"
        assert source["queries"]["p95"] == "max(my_p95_seconds{$selector}[$window])"
        assert source["queries"]["requests"] == arm_metrics.APP_QUERIES["requests"]
        text = edge_text(mocks)
        assert "prometheus.enable = false;" in text
        assert text == edge_config("blue", prometheus_port=None, versions=V1).text

    return pulumi.Output.from_input(edge.metrics).apply(check)


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("prometheusUrl", "prometheus.example.com:9090", "an http:// or https:// URL"),
        ("prometheusUrl", "ftp://prometheus.example.com", "an http:// or https:// URL"),
        ("prometheusUrl", "http://", "an http:// or https:// URL"),
        ("prometheusUrl", "http://prom.example.com/?q=1", "an http:// or https:// URL"),
        ("prometheusUrl", 'http://prom"x', "an http:// or https:// URL"),
        ("metrics", "accessLog", '"prometheus" on the nixos platform'),
        ("metrics", "cloudwatch", '"prometheus" on the nixos platform'),
    ],
)
def test_the_edge_refuses_a_metrics_source_it_cannot_serve(key, value, allowed):
    with pytest.raises(ConfigError) as err:
        nixos_settings("live", role="edge", activeColor="blue", edgeNode="10.0.0.2", **{key: value})
    assert f"bluegreen:{key} must be {allowed}" in str(err.value)
    assert f'got "{value}"' in str(err.value)


def test_the_nixos_edge_refuses_cache_warm_paths():
    with pytest.raises(ConfigError) as err:
        nixos_settings(
            "live",
            role="edge",
            activeColor="blue",
            edgeNode="10.0.0.2",
            cache="true",
            cacheWarmPaths='["/", "/assets/app.js"]',
        )
    assert "bluegreen:cacheWarmPaths must be unset on the nixos platform" in str(err.value)
    assert 'got "/,/assets/app.js"' in str(err.value)
    # The cache itself, shadow traffic and the limits, "hold" included, are the edge node's.
    loaded = nixos_settings(
        "live",
        role="edge",
        activeColor="blue",
        edgeNode="10.0.0.2",
        cache="true",
        shadow="10",
        rateLimit="100",
        limitWhen="hold",
    )
    assert loaded.settings.backpressure.when == "hold"


# --- writes across a cutover: the lease, the window, the queue, the writers ---------------------


@pytest.mark.integration
def test_the_edge_module_serves_the_lease_status_and_queue_as_render_local(nix_env, tmp_path):
    """The read-only documents, the divert of keyed writes and the queue's named locations are
    render_local's, and so is the queue service's upstream."""
    defaults = live_defaults()
    on = maintenance(queue=QUEUE, window=WINDOW)
    rendered = edge_config("green", TWO_BLUE, maintenance=on)
    result = evaluate(nix_env, on_host(tmp_path, "shop-edge.nix", rendered.text))
    assert result["failedAssertions"] == []
    nginx_cfg = result["config"]["services"]["nginx"]
    locations = nginx_cfg["virtualHosts"]["bluegreen-edge"]["locations"]
    local = render_local(
        app="shop",
        run_dir="/run/bluegreen",
        listen="127.0.0.1:18080",
        nodes=TWO_BLUE,
        js_module="/modules/ngx_http_js_module.so",
        cache=defaults.cache,
        shadow=defaults.shadow,
        backpressure=defaults.backpressure,
        queue=QUEUE,
        queue_listen="127.0.0.1:18095",
    )
    want = block(local, "location / {")
    assert directives(locations["/"]["extraConfig"]) == [
        d for d in want if not d.startswith("proxy_pass ")
    ]
    for path in (nginx.LEASE_PATH, nginx.STATUS_PATH, nginx.STATUS_PATH + ".html"):
        assert directives(locations[f"= {path}"]["extraConfig"]) == block(
            local, f"location = {path} {{"
        ), path
    assert locations["^~ /_bluegreen/"]["extraConfig"] == "return 404;"
    assert block(local, "location ^~ /_bluegreen/ { return 404; }") == []
    assert locations[f"^~ {nginx.ARM_PREFIX}"]["extraConfig"] == "return 404;"
    assert f"location ^~ {nginx.ARM_PREFIX} {{ return 404; }}" in local
    # The queue's per-client limit zones, as render_local has them at the http level.
    zones = [d for d in directives(local) if d.startswith(("limit_req_zone", "limit_conn_zone"))]
    zones = [d for d in zones if "bluegreen_queue_" in d]
    assert len(zones) == 2
    assert [d for d in directives(nginx_cfg["commonHttpConfig"]) if d in zones] == zones
    queue = locations["@bluegreen_queue"]
    want = block(local, "location @bluegreen_queue {")
    assert f"proxy_pass {queue['proxyPass']};" in want
    assert directives(queue["extraConfig"]) == [d for d in want if not d.startswith("proxy_pass")]
    assert directives(locations["@bluegreen_unqueued"]["extraConfig"]) == block(
        local, "location @bluegreen_unqueued {"
    )
    assert upstream_lines(nginx_cfg)["bluegreen_shop_queue"] == {"127.0.0.1:18095": set()}


@pytest.mark.integration
def test_without_a_queue_there_is_no_queue_service_nor_its_locations(nix_env, tmp_path):
    result = evaluate(nix_env, on_host(tmp_path, "shop-edge.nix", edge_config("blue").text))
    locations = result["config"]["services"]["nginx"]["virtualHosts"]["bluegreen-edge"]["locations"]
    assert "@bluegreen_queue" not in locations
    assert "bluegreen-edge-queue" not in result["config"]["systemd"]["services"]
    assert "= /_bluegreen/lease" in locations, "the lease is served with or without a queue"


def queue_unit(nix_env, tmp_path, extra: str = "") -> dict:
    node = node_file(
        tmp_path,
        "edge-node",
        'services.bluegreen-edge = { enable = true; activeColor = "blue"; '
        + servers_nix(100, 0)
        + f' maintenance.queue.paths = [ "/orders" ]; {extra} }};',
    )
    result = evaluate(nix_env, node)
    assert result["failedAssertions"] == []
    return result["config"]["systemd"]["services"]["bluegreen-edge-queue"]["serviceConfig"]


@pytest.mark.integration
def test_the_queue_service_keeps_its_store_to_itself(nix_env, tmp_path):
    unit = queue_unit(nix_env, tmp_path)
    assert (unit["DynamicUser"], unit["StateDirectoryMode"], unit["UMask"]) == (
        True,
        "0700",
        "0077",
    )
    assert unit["Restart"] == "always"
    argv = unit["ExecStart"].split()
    assert argv[0].endswith("/bin/bluegreen-queue")
    assert "--store=sqlite:///var/lib/bluegreen-edge-queue/intents.sqlite3" in argv
    assert "--key-file=/var/lib/bluegreen-edge-queue/intents.key" in argv
    assert "--listen=127.0.0.1:18095" in argv
    assert any(a.startswith("--edge=http://127.0.0.1:") for a in argv), argv
    assert unit["LoadCredential"] == []


@pytest.mark.integration
def test_a_postgresql_dsn_reaches_the_queue_service_only_as_a_credential(nix_env, tmp_path):
    unit = queue_unit(
        nix_env,
        tmp_path,
        'maintenance.queue.dsnFile = "/run/secrets/queue-dsn"; '
        'maintenance.queue.keyFile = "/run/secrets/queue-key";',
    )
    assert unit["LoadCredential"] == ["dsn:/run/secrets/queue-dsn", "key:/run/secrets/queue-key"]
    argv = unit["ExecStart"].split()
    assert "--store-file=%d/dsn" in argv and "--key-file=%d/key" in argv


def test_the_nixos_platform_refuses_a_dsn_it_would_put_in_the_nix_store():
    with pytest.raises(ConfigError) as err:
        nixos_settings(
            "live",
            role="edge",
            activeColor="blue",
            edgeNode="10.0.0.2",
            maintenanceQueue="/orders",
            maintenanceQueueStore="postgresql",
            maintenanceQueueDsn="postgresql://app:hunter2@db/shop",
        )
    (problem,) = err.value.problems
    assert problem.startswith('bluegreen:maintenanceQueueStore is "postgresql", but ')
    assert "services.bluegreen-edge.maintenance.queue.dsnFile" in problem
    assert "hunter2" not in problem


@pytest.mark.integration
def test_an_arm_writer_runs_under_bluegreen_writer(nix_env, tmp_path):
    node = node_file(
        tmp_path,
        "arm-node",
        'services.bluegreen-arm = { enable = true; color = "green"; version = "v2"; '
        "writers.orders = { command = [ "
        '"/run/current-system/sw/bin/run-consumer" "--queue=orders" ]; '
        'edgeUrl = "http://10.0.0.5:8080"; grace = "3s"; }; };',
    )
    result = evaluate(nix_env, node)
    assert result["failedAssertions"] == []
    unit = result["config"]["systemd"]["services"]["bluegreen-writer-orders"]["serviceConfig"]
    argv = unit["ExecStart"].split()
    assert argv[0].endswith("/bin/bluegreen-writer") and argv[1:] == [
        "--color=green",
        "--edge=http://10.0.0.5:8080",
        "--grace=3s",
        "--poll=0.2s",
        "--",
        "/run/current-system/sw/bin/run-consumer",
        "--queue=orders",
    ]
    assert (unit["KillMode"], unit["Restart"], unit["DynamicUser"]) == (
        "control-group",
        "always",
        True,
    )
    assert "bluegreen-arm" in result["config"]["systemd"]["services"]


@pytest.mark.integration
@pytest.mark.parametrize(
    "writer",
    [
        'command = [ "run; rm -rf /" ]; edgeUrl = "http://10.0.0.5:8080";',
        'command = [ "run" ]; edgeUrl = "ftp://10.0.0.5";',
        'command = [ "run" ]; edgeUrl = "http://10.0.0.5:8080"; grace = "10 s";',
    ],
)
def test_a_writer_refuses_what_would_inject_into_its_unit(nix_env, tmp_path, writer):
    node = node_file(
        tmp_path,
        "arm-node",
        'services.bluegreen-arm = { enable = true; color = "blue"; version = "v1"; '
        f"writers.w = {{ {writer} }}; }};",
    )
    assert "is not of type" in evaluation_error(nix_env, node)


@pytest.mark.integration
def test_a_writer_without_a_command_is_named(nix_env, tmp_path):
    node = node_file(
        tmp_path,
        "arm-node",
        'services.bluegreen-arm = { enable = true; color = "blue"; version = "v1"; '
        'writers.idle = { command = [ ]; edgeUrl = "http://10.0.0.5:8080"; }; };',
    )
    failed = evaluate(nix_env, node)["failedAssertions"]
    assert any("every writer needs a command, and idle has none" in m for m in failed), failed


@pytest.mark.integration
def test_the_nixos_edge_serves_the_lease_and_the_window_for_real(live_edge):
    # The queue is structural (nginx.conf); maintenance and its window are state.
    before = time.time()
    url, _ = live_edge("green", maintenance=maintenance(enabled=False, queue=QUEUE))
    lease = probe.request(url + nginx.LEASE_PATH).json()
    # `since` is when this host began serving the fence, by its clock, not the operator's NOW.
    assert (lease["holder"], lease["fence"]) == ("green", 1)
    assert before - 0.05 <= lease["since"] <= lease["now"] < lease["since"] + lease["handover"]
    assert probe.request(url + nginx.LEASE_PATH, method="POST").status == 405
    on = maintenance(queue=QUEUE, window=Window(None, datetime.now(UTC) + timedelta(minutes=5)))
    switched = time.time()
    live_edge.switch("green", maintenance=on, lease=nginx.Lease(2, NOW + 60, 5))
    lease = probe.request(url + nginx.LEASE_PATH).json()
    assert (lease["holder"], lease["fence"]) == (None, 2), "frozen: nobody writes"
    assert lease["since"] >= switched - 0.05, "a new fence is stamped when the host serves it"
    status = probe.request(url + nginx.STATUS_PATH).json()
    assert status["readOnly"] is True and status["window"]["phase"] == "in-progress"
    # A keyed write to a queued path, with no queue service running here: refused, not lost.
    kept = probe.request(
        url + "/orders/1", method="POST", body=b"{}", headers={"Idempotency-Key": "k"}
    )
    assert kept.status == 503 and 200 < int(kept.headers["retry-after"]) <= 300
    # One client's flood of queued writes meets the queue's own limit (5/s, a burst of 10).
    write = {"method": "POST", "body": b"{}", "headers": {"Idempotency-Key": "k"}}
    flood = [probe.request(url + "/orders/1", **write) for _ in range(20)]
    refused = [a for a in flood if a.status == 429]
    assert refused and {a.headers["retry-after"] for a in refused} == {"1"}
