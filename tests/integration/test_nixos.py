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
import subprocess
import sys
import tarfile
import threading
import time
import types
from datetime import UTC, datetime, timedelta

import pytest

from bluegreen import arm_metrics, config, nginx, probe
from bluegreen.config import Backpressure, Cache, Queue, Shadow, Window, weights_for
from bluegreen.nginx_conf import render_local
from bluegreen.switch import WRITE_METHODS, maintenance_body
from platforms.local.nginx_binary import js_module
from platforms.nixos import bundle, host, lease_release, render, ssh_deploy
from tests.support.mocks import maintenance
from tests.support.nixos_cases import (
    ALWAYS,
    EVIL,
    HOLD,
    LEASE,
    NODES,
    NOW,
    PROBE_TOKEN,
    ROOT,
    VERSIONS,
    arm_config,
    deployed_file,
    edge_config,
    edge_props,
    live_defaults,
    props,
)
from tests.support.nixos_env import (
    LEASE_DIR,
    STATE,
    app_package_script,
    evaluate,
    evaluation_error,
    nix,
    node_file,
    on_host,
)
from tests.support.sandbox import free_ports

TWO_BLUE = {"blue": ["10.0.0.10:8000", "10.0.0.12:8000"], "green": ["10.0.0.11:8000"]}


WINDOW = Window(datetime(2026, 11, 24, 1, 0, tzinfo=UTC), datetime(2026, 11, 24, 2, 30, tzinfo=UTC))


QUEUE = Queue(paths=("/orders", "/cart"), max_body_kb=16)


CACHE = Cache(enabled=True, max_size_mb=64, warm_paths=())


SHADOW = Shadow(percent=10, writes=True)


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
def test_every_config_the_adapter_renders_parses(nix_env, tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    done = nix(nix_env, "--parse", str(path))
    assert done.returncode == 0, f"rendered {name} does not parse:\n{done.stderr}\n{text}"


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


def test_the_arm_module_defaults_are_the_projects(nix_env, tmp_path):
    body = 'services.bluegreen-arm = { enable = true; color = "blue"; version = "v1"; };'
    options = evaluate(nix_env, node_file(tmp_path, "arm-node", body))["options"]
    arm = options["services"]["bluegreen-arm"]
    defaults = config.project_defaults(ROOT)
    assert (arm["port"], arm["healthPath"]) == (int(defaults["appPort"]), defaults["healthPath"])


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


def prometheus_yml(tmp_path, scrape_configs: list) -> str:
    """The config file nixpkgs' prometheus module writes for these scrapeConfigs (JSON is YAML)."""
    path = tmp_path / "prometheus.yml"
    path.write_text(json.dumps({"scrape_configs": scrape_configs}))
    return str(path)


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


def test_with_a_prometheus_of_ones_own_the_edge_node_runs_none(nix_env, tmp_path):
    rendered = edge_config("blue", prometheus_port=None)
    result = evaluate(nix_env, on_host(tmp_path, "shop-edge.nix", rendered.text))
    assert result["failedAssertions"] == []
    assert "prometheus" not in result["config"]["services"]
    assert result["config"]["networking"]["firewall"]["allowedTCPPorts"] == [18080]


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


def test_the_app_package_runs_a_python_with_prometheus_client(nix_env):
    """The app imports prometheus_client (its /metrics): the script must exec a Python built
    with it. The stand-in python3 names in its path the packages it was built with."""
    with open(os.path.join(ROOT, "app", "metrics.py")) as f:  # server.py imports it
        assert "from prometheus_client import" in f.read()
    script = app_package_script(nix_env)
    # psycopg for the items table (tests/integration/test_nixos_data.py).
    python = "/python3-with-prometheus-client+psycopg/bin/python3"
    assert script.split()[:2] == ["exec", python], script


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
def test_edge_refuses_bad_combinations(nix_env, tmp_path, active, servers, message):
    node = node_file(
        tmp_path,
        "edge-node",
        f'services.bluegreen-edge = {{ enable = true; activeColor = "{active}"; {servers} }};',
    )
    failed = evaluate(nix_env, node)["failedAssertions"]
    assert any(message in m for m in failed), failed


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


def test_a_required_option_left_out_is_named(nix_env, tmp_path):
    node = node_file(
        tmp_path, "arm-node", 'services.bluegreen-arm = { enable = true; color = "blue"; };'
    )
    assert "services.bluegreen-arm.version' is used but not defined" in evaluation_error(
        nix_env, node
    )


@pytest.mark.parametrize("value", EVIL)
def test_a_nix_string_evaluates_to_exactly_its_value(nix_env, value):
    done = nix(nix_env, "--eval", "--json", "-E", render.nix_string(value))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == value


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


def test_maintenance_can_answer_423_locked(live_edge):
    url, _ = live_edge(maintenance=maintenance(status=423, retry_after_s=600))
    write = probe.request(url + "/orders", method="POST", body=b"{}")
    assert write.status == 423 and write.headers["retry-after"] == "600"
    assert write.json()["status"] == 423
    assert probe.request(url + "/").status == 200


def test_without_maintenance_writes_reach_the_live_arm(live_edge):
    url, _ = live_edge()
    write = probe.request(url + "/orders", method="POST", body=b"{}")
    assert write.status == 200 and write.color == "green", write.describe()
    assert "retry-after" not in write.headers and "x-bluegreen-banner" not in write.headers


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


def test_destroy_leaves_an_empty_module_the_host_can_still_import(ssh_calls, nix_env, tmp_path):
    provider = host.HostProvider()
    provider.delete("id", props(arm_config()))
    with tarfile.open(fileobj=io.BytesIO(ssh_calls[0][1])) as tar:
        assert tar.getnames() == ["shop-blue.nix"]
        (tmp_path / "tombstone.nix").write_bytes(tar.extractfile("shop-blue.nix").read())
    assert ssh_calls[1][0][-1] == "nixos-rebuild switch"
    assert nix(nix_env, "--parse", str(tmp_path / "tombstone.nix")).returncode == 0


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


def test_a_writer_without_a_command_is_named(nix_env, tmp_path):
    node = node_file(
        tmp_path,
        "arm-node",
        'services.bluegreen-arm = { enable = true; color = "blue"; version = "v1"; '
        'writers.idle = { command = [ ]; edgeUrl = "http://10.0.0.5:8080"; }; };',
    )
    failed = evaluate(nix_env, node)["failedAssertions"]
    assert any("every writer needs a command, and idle has none" in m for m in failed), failed


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


@pytest.mark.parametrize("nobody", [True, False], ids=["nobody", "holder"])
def test_a_shared_lease_is_what_switch_state_builds_and_activation_leaves_it_unstamped(
    nix_env, tmp_path, nobody
):
    """One of several edge nodes (bluegreen:edges): its lease is the one they all serve, held
    by nobody between the waves of a flip, and the node does not stamp it itself; the old
    fence's stamp is not its to drop either (platforms/nixos/lease_release.py does both)."""
    lease = nginx.Lease(fence=7, since=1795000100, handover=5, shared=True, nobody=nobody)
    defaults = live_defaults()
    rendered = edge_config("green", TWO_BLUE, lease=lease)
    result = evaluate(nix_env, on_host(tmp_path, "shop-edge.nix", rendered.text))
    assert result["failedAssertions"] == []
    want = nginx.switch_state(
        conf_generation=rendered.conf,
        active="green",
        weights=weights_for("green"),
        sticky=False,
        versions=VERSIONS,
        maintenance=maintenance(enabled=False),
        shadow=defaults.shadow,
        backpressure=defaults.backpressure,
        limits_until=None,
        lease=lease,
        probe_token=PROBE_TOKEN,
    )
    assert state_of(result) == want and want["generation"] == rendered.generation
    assert want["lease"]["color"] == (None if nobody else "green") and want["lease"]["shared"]
    folder = tmp_path / "lease"
    folder.mkdir()
    (folder / "lease-6").touch()
    script = result["config"]["system"]["activationScripts"]["bluegreen-edge-lease"]["text"]
    subprocess.run(["sh", "-euc", script.replace(LEASE_DIR, str(folder))], check=True)
    assert os.listdir(folder) == ["lease-6"]


def test_a_shared_lease_holds_for_nobody_until_the_live_stack_stamps_it(live_edge):
    """On real nginx: the lease of several edge nodes is served with `since` as now, so no
    holder's writers start, until the stamp the live stack puts on every node at once."""
    url, _ = live_edge("green")
    live_edge.switch("green", lease=nginx.Lease(2, NOW, 5, shared=True, nobody=True))
    lease = probe.request(url + nginx.LEASE_PATH).json()
    assert (lease["holder"], lease["fence"]) == (None, 2), "nobody, between waves"
    live_edge.switch("green", lease=nginx.Lease(3, NOW, 5, shared=True))
    lease = probe.request(url + nginx.LEASE_PATH).json()
    assert (lease["holder"], lease["fence"]) == ("green", 3)
    assert lease["since"] == lease["now"], "unstamped: the handover starts with every request"
    folder = live_edge.prefix / "lease"
    stamped = time.time()
    subprocess.run(["sh", "-euc", lease_release.stamp_script(str(folder), 3)], check=True)
    lease = probe.request(url + nginx.LEASE_PATH).json()
    assert stamped - 0.05 <= lease["since"] < lease["now"] < lease["since"] + lease["handover"]
    assert os.listdir(folder) == ["lease-3"], "the stamps of other fences go"
