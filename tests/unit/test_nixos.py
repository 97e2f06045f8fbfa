"""The nixos platform without a NixOS host: the Nix it ships and renders, evaluated for real.

No nixpkgs is available offline, so `nix-instantiate` (Debian's nix-bin) evaluates the node
configs with `nixos/tests/lib-stub.nix` in place of nixpkgs' lib. The nginx that the edge
module describes is assembled the way nixpkgs' nginx module writes it and run for real on
loopback, so maintenance mode is checked by requests, not by reading text. The SSH transport
itself is proven in tests/e2e/test_nixos_ssh.py against a real sshd.
"""

from __future__ import annotations

import difflib
import glob
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile

import pulumi
import pytest
from pulumi.runtime import rpc

from bluegreen import config, metrics, nginx, probe
from bluegreen.config import ConfigError, weights_for
from bluegreen.reader import BANNER, URL_PATH, VERSION
from bluegreen.switch import maintenance_body
from platforms.nixos import host, render
from tests.support.sandbox import free_ports
from tests.unit.mocks import maintenance, stack

ROOT = render.ROOT
EVAL = os.path.join(ROOT, "nixos", "tests", "eval-node.nix")
NODES = {"blue": ["10.0.0.10:8000"], "green": ["10.0.0.11:8000"]}


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
    for rel, content in {**render.bundle(), file_name: text}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return str(tmp_path / file_name)


def node_file(tmp_path, module: str, body: str) -> str:
    """A hand-written node config importing one of the repo's modules."""
    path = tmp_path / "node.nix"
    path.write_text(f"{{ ... }}: {{ imports = [ {ROOT}/nixos/modules/{module}.nix ]; {body} }}\n")
    return str(path)


def edge_config(
    active: str = "blue", nodes=None, canary: int | None = None, **kw
) -> render.EdgeConfig:
    servers = nginx.servers_for(nodes or NODES, weights_for(active, canary))
    kw.setdefault("maintenance", maintenance(enabled=False))
    return render.edge_node(
        stack="live", app="shop", active_color=active, servers=servers, port=18080, **kw
    )


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
    ],
)
def test_every_config_the_adapter_renders_parses(nix_env, tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    done = nix(nix_env, "--parse", str(path))
    assert done.returncode == 0, f"rendered {name} does not parse:\n{done.stderr}\n{text}"


# --- the edge: the same upstream as the local platform ---------------------------------------


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


def rendered_lines(text: str) -> tuple[str, dict[str, set[str]], list[str]]:
    """render_upstream's text as (name, {address: parameters}, other directives)."""
    lines = [line.split("#")[0].strip().rstrip(";") for line in text.splitlines()]
    name = lines[0].split()[1]
    servers = {w[1]: set(w[2:]) for w in (line.split() for line in lines) if w[:1] == ["server"]}
    other = [line for line in lines[1:] if line and line != "}" and not line.startswith("server")]
    return name, servers, other


TWO_BLUE = {"blue": ["10.0.0.10:8000", "10.0.0.12:8000"], "green": ["10.0.0.11:8000"]}


@pytest.mark.parametrize(
    ("active", "canary", "sticky", "nodes"),
    [
        ("blue", None, False, NODES),
        ("green", None, False, NODES),
        ("blue", None, False, TWO_BLUE),
        ("green", None, True, TWO_BLUE),  # sticky has no effect without a split
        ("green", 25, False, NODES),
        ("green", 5, True, TWO_BLUE),
    ],
)
def test_edge_upstream_is_what_render_upstream_renders(
    nix_env, tmp_path, active, canary, sticky, nodes
):
    rendered = edge_config(active, nodes, canary, sticky=sticky)
    servers = nginx.servers_for(nodes, weights_for(active, canary))
    result = evaluate(nix_env, on_host(tmp_path, "shop-edge.nix", rendered.text))
    assert result["failedAssertions"] == []

    nginx_cfg = result["config"]["services"]["nginx"]
    name, want, other = rendered_lines(
        nginx.render_upstream("bluegreen_shop", servers, sticky=sticky)
    )
    # Same servers with the same parameters (nginx does not care about their order), and the
    # same other directives in the same order (hash before keepalive, or nginx ignores it).
    assert upstream_lines(nginx_cfg) == {name: want}
    extra = nginx_cfg["upstreams"][name]["extraConfig"]
    assert [line.strip().rstrip(";") for line in extra.splitlines() if line.strip()] == other
    for s in servers:
        assert ("backup" in want[s.address]) == (s.weight == 0), s
        assert (f"weight={s.weight}" in want[s.address]) == (s.weight > 0), s


# --- one source for what the modules share with the config and the local edge ----------------


@pytest.mark.parametrize(
    ("module", "pattern"),
    [
        ("arm-node", VERSION.pattern),
        ("arm-node", URL_PATH.pattern),
        ("arm-node", render._PATTERNS["host"]),
        ("edge-node", URL_PATH.pattern),
        ("edge-node", BANNER.pattern),
        ("edge-node", render._PATTERNS["address"]),
        ("edge-node", render._PATTERNS["host"]),
    ],
)
def test_the_modules_check_the_alphabets_the_config_checks(module, pattern):
    with open(os.path.join(ROOT, "nixos", "modules", f"{module}.nix")) as f:
        assert f"types.strMatching {render.nix_string(pattern)}" in f.read()


def directives(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()[:1] not in ("", "#")]


def test_the_edge_module_says_what_the_local_edge_renders(nix_env, tmp_path):
    """The sticky canary's maps, how the edge proxies, the writes maintenance refuses and its
    answer, the upstream's parameters: the module's own text and defaults, pinned to
    bluegreen/nginx.py and Pulumi.yaml, so that neither changes alone."""
    body = (
        'services.bluegreen-edge = { enable = true; activeColor = "blue"; stickyCanary = true; '
        "maintenance.enable = true; servers = [ "
        '{ address = "10.0.0.10:8000"; color = "blue"; weight = 100; } ]; };'
    )
    result = evaluate(nix_env, node_file(tmp_path, "edge-node", body))
    options = result["options"]["services"]["bluegreen-edge"]
    nginx_cfg = result["config"]["services"]["nginx"]
    assert directives(nginx_cfg["commonHttpConfig"]) == directives(nginx.STICKY_MAPS)
    location = nginx_cfg["virtualHosts"]["bluegreen-edge"]["locations"]["/"]["extraConfig"]
    proxy = directives(nginx.PROXY)
    assert directives(location)[: len(proxy)] == proxy
    assert f"if ($request_method ~ {nginx.WRITES}" in location
    assert (options["serverParameters"], options["keepalive"]) == (nginx.FAILOVER, nginx.KEEPALIVE)
    m = maintenance()  # Pulumi.yaml's defaults
    module_m = options["maintenance"]
    assert (module_m["status"], module_m["retryAfter"], module_m["banner"]) == (
        m.status,
        m.retry_after_s,
        m.banner,
    )
    assert json.loads(module_m["body"]) == json.loads(maintenance_body(m))


def test_the_arm_module_defaults_are_the_projects(nix_env, tmp_path):
    body = 'services.bluegreen-arm = { enable = true; color = "blue"; version = "v1"; };'
    options = evaluate(nix_env, node_file(tmp_path, "arm-node", body))["options"]
    arm = options["services"]["bluegreen-arm"]
    defaults = config.project_defaults(ROOT)
    assert (arm["port"], arm["healthPath"]) == (int(defaults["appPort"]), defaults["healthPath"])


def test_a_flip_changes_the_pointer_weights_and_generation_only():
    blue, green = edge_config("blue"), edge_config("green")
    changed = [
        line[1:].strip()
        for line in difflib.unified_diff(blue.text.splitlines(), green.text.splitlines(), n=0)
        if line.startswith("+") and not line.startswith("+++")
    ]
    assert changed == [
        'activeColor = "green";',
        '{ address = "10.0.0.10:8000"; color = "blue"; weight = 0; }',
        '{ address = "10.0.0.11:8000"; color = "green"; weight = 100; }',
        f'generation = "{green.generation}";',
    ]
    assert blue.generation != green.generation
    assert edge_config("blue") == blue  # rendering is deterministic: no diff, no deploy


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
    servers = edge["config"]["services"]["nginx"]["upstreams"]["bluegreen_shop"]["servers"]
    assert servers["10.0.0.10:8000"]["weight"] == 100
    assert servers["10.0.0.11:8000"] == {"backup": True}


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


def test_the_edge_node_scrapes_both_arms_every_second(nix_env, tmp_path):
    nodes = {"blue": ["10.0.0.10:8000", "10.0.0.12:8000"], "green": ["10.0.0.11:8000"]}
    rendered = edge_config("green", nodes=nodes, prometheus_port=19191)
    result = evaluate(nix_env, on_host(tmp_path, "shop-edge.nix", rendered.text))
    assert result["failedAssertions"] == []
    prom = result["config"]["services"]["prometheus"]
    assert prom["enable"] is True and prom["port"] == 19191
    (job,) = prom["scrapeConfigs"]
    assert (job["metrics_path"], job["scrape_interval"], job["scrape_timeout"]) == (
        metrics.PATH,
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
        '{ address = "10.0.0.10:8000"; color = "blue"; weight = 100; } ]; };'
    )
    result = evaluate(nix_env, node_file(tmp_path, "edge-node", body))
    port = result["options"]["services"]["bluegreen-edge"]["prometheus"]["port"]
    assert port == int(config.project_defaults(ROOT)["prometheusPort"])
    assert result["config"]["services"]["prometheus"]["port"] == port


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
        f'servers = [ {{ address = "10.0.0.10:8000"; color = "blue"; weight = {blue}; }} '
        f'{{ address = "{green_address}"; color = "green"; weight = {green}; }} ];'
    )


@pytest.mark.parametrize(
    ("active", "servers", "message"),
    [
        (
            "blue",
            servers_nix(0, 0),
            "services.bluegreen-edge.servers: no server has a weight above 0",
        ),
        (
            "green",
            servers_nix(100, 0),
            "services.bluegreen-edge.activeColor is green, but no green",
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
    servers = result["config"]["services"]["nginx"]["upstreams"]["bluegreen"]["servers"]
    assert servers["10.0.0.10:8000"]["weight"] == 75 and servers["10.0.0.11:8000"]["weight"] == 25


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
        render.file_name(value, "blue")


@pytest.mark.parametrize("address", ["10.0.0.10:8000 backup", "10.0.0.10", "[fd00::1]:80;"])
def test_an_upstream_address_must_be_exactly_host_and_port(address):
    with pytest.raises(ValueError, match="refusing to render"):
        edge_config(nodes={"blue": [address], "green": ["10.0.0.11:8000"]})


@pytest.mark.parametrize(
    ("module", "body"),
    [
        ("arm-node", 'color = "blue"; version = "v1; }";'),
        ("arm-node", 'color = "blue"; version = "v1"; healthPath = "/ready; return 200";'),
        ("arm-node", 'color = "blue"; version = "v1"; extraArgs = [ "--x=1 --y" ];'),
        ("edge-node", 'activeColor = "blue"; ' + servers_nix(100, 0, "10.0.0.11:8000 down")),
        ("edge-node", 'activeColor = "blue"; generation = "\\"; x"; ' + servers_nix(100, 0)),
    ],
)
def test_modules_refuse_values_that_would_inject_into_nginx_or_systemd(
    nix_env, tmp_path, module, body
):
    service = "bluegreen-arm" if module == "arm-node" else "bluegreen-edge"
    node = node_file(tmp_path, module, f"services.{service} = {{ enable = true; {body} }};")
    assert "is not of type" in evaluation_error(nix_env, node)


# --- the edge for real: nginx as the module describes it -------------------------------------


def nginx_conf(nginx_cfg: dict, prefix: str, listen: str) -> str:
    """The http parts of nixpkgs' nginx module output for this config: commonHttpConfig, the
    upstreams, then each virtual host with its locations (`proxy_pass`, then `extraConfig`)."""
    out = [
        f"pid {prefix}/nginx.pid;",
        f"error_log {prefix}/error.log;",
        "events { worker_connections 64; }",
        "http {",
        f"client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;",
        f"fastcgi_temp_path {prefix}/fastcgi; uwsgi_temp_path {prefix}/uwsgi;",
        f"scgi_temp_path {prefix}/scgi; access_log off;",
        nginx_cfg.get("commonHttpConfig", ""),
    ]
    for name, servers in upstream_lines(nginx_cfg).items():
        out.append(f"upstream {name} {{")
        out += [f"server {a} {' '.join(sorted(p))};" for a, p in servers.items()]
        out += [nginx_cfg["upstreams"][name]["extraConfig"], "}"]
    for vhost in nginx_cfg["virtualHosts"].values():
        out += ["server {", f"listen {listen};"]
        for location, body in sorted(vhost["locations"].items()):
            out.append(f"location {location} {{")
            if body.get("proxyPass"):
                out.append(f"proxy_pass {body['proxyPass']};")
            out += [body.get("extraConfig", ""), "}"]
        out.append("}")
    out.append("}")
    return "\n".join(out) + "\n"


def free_port() -> int:
    return free_ports(1)[0]


@pytest.fixture
def live_edge(nix_env, tmp_path):
    """Two reference arms and nginx on loopback, nginx configured from the evaluated edge node
    the adapter renders; green is live."""
    started: list[subprocess.Popen] = []
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    prefix = tmp_path / "nginx"
    prefix.mkdir()

    def start(**kw) -> tuple[str, render.EdgeConfig]:
        ports = {"blue": free_port(), "green": free_port()}
        for color, port in ports.items():
            started.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        os.path.join(ROOT, "app", "server.py"),
                        f"--color={color}",
                        f"--version={color}-v1",
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
        nodes = {c: [f"127.0.0.1:{p}"] for c, p in ports.items()}
        config = edge_config("green", nodes=nodes, **kw)
        result = evaluate(nix_env, on_host(tmp_path / "host", "shop-edge.nix", config.text))
        assert result["failedAssertions"] == []
        listen = f"127.0.0.1:{free_port()}"
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_conf(result["config"]["services"]["nginx"], str(prefix), listen))
        check = subprocess.run(
            [nginx_bin, "-t", "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stderr + conf.read_text()
        subprocess.run([nginx_bin, "-p", str(prefix), "-c", str(conf)], check=True)
        url = f"http://{listen}"
        answer, _ = probe.wait_until(url + "/", lambda a: a.status is not None, 10)
        assert answer.status is not None, answer.describe()
        return url, config

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
    assert health.status == 200
    assert health.json() == {"activeColor": "green", "readOnly": True, "status": "ok"}


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


# --- the deploy ------------------------------------------------------------------------------

TARGET = host.Target(
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
    copy, switch = host.deploy_commands(TARGET, "/tmp/k/id", "nixos-rebuild")
    assert copy == SSH + [host.copy_script("/etc/nixos/bluegreen")]
    assert switch == SSH + ["nixos-rebuild switch"]
    assert "d=/etc/nixos/bluegreen;" in copy[-1] and 'tar -x -f - -C "$t"' in copy[-1]


def test_the_remote_commands_quote_what_they_are_given():
    copy, switch = host.deploy_commands(
        host.Target("h", "root", 22, "/k/known_hosts", remote_dir="/etc/nixos/x y"),
        "/k/id",
        "/run/current system/bin/rebuild",
    )
    assert "d='/etc/nixos/x y';" in copy[-1]
    assert switch[-1] == "'/run/current system/bin/rebuild' switch"
    with pytest.raises(host.DeployError, match="no spaces"):
        host.ssh_command(host.Target("h", "root", 22, "/my dir/known_hosts"), "/k/id", "true")


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

    monkeypatch.setattr(host, "run", fake_run)
    monkeypatch.setattr(host.tempfile, "tempdir", str(tmp_path))
    return calls


def test_a_change_deploys_and_no_change_deploys_nothing(ssh_calls, tmp_path):
    provider = host.HostProvider()
    first = props(arm_config(version="v1"))
    created = provider.create(first)
    assert [c[0][-1] for c in ssh_calls] == [
        host.copy_script("/etc/nixos/bluegreen"),
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
        host.copy_script("/etc/nixos/bluegreen"),
        "nixos-rebuild switch",
    ]
    assert updated.outs["digest"] != created.outs["digest"]


def test_another_host_is_a_replacement(ssh_calls):
    provider = host.HostProvider()
    created = provider.create(props(arm_config()))
    assert provider.diff("id", created.outs, props(arm_config(), host="10.0.0.12")).replaces == [
        "host"
    ]


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
    with pytest.raises(host.DeployError, match="switched back to and keeps serving"):
        provider.update("id", created.outs, props(arm_config(version="v2"), confirm=confirm))
    tars = [c[1] for c in ssh_calls[2:] if c[1] is not None]
    assert len(tars) == 2  # the new files, then the previous ones again
    with tarfile.open(fileobj=io.BytesIO(tars[1])) as tar:
        assert 'version = "v1";' in tar.extractfile("shop-blue.nix").read().decode()
    assert [c[0][-1] for c in ssh_calls].count("nixos-rebuild switch") == 3


# --- the adapter under Pulumi mocks ----------------------------------------------------------


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.created: dict[str, pulumi.runtime.MockResourceArgs] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.created[args.name] = args
        return f"{args.name}-id", {**args.inputs, "digest": "d"}

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
            assert set(res.inputs["bundle"]) == set(render.BUNDLE)

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
    want = edge_config("green", prometheus_port=19090)  # Pulumi.yaml's prometheusPort

    def check(args):
        url, generation = args
        res = mocks.created["live-10.0.0.2"].inputs
        assert url == "http://10.0.0.2:18080/"
        assert res["fileName"] == "shop-edge.nix"
        assert res["config"] == want.text and generation == want.generation
        assert res["confirm"]["headers"] == {
            "x-bluegreen-edge-generation": want.generation,
            "x-bluegreen-color": "green",
        }

    return pulumi.Output.all(edge.url, edge.generation).apply(check)


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
            "queries": metrics.APP_QUERIES,
            "selectors": {"blue": 'color="blue"', "green": 'color="green"'},
        }
        text = mocks.created["live-10.0.0.2"].inputs["config"]
        assert text == edge_config("green", prometheus_port=19191).text

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
        assert source["queries"]["requests"] == metrics.APP_QUERIES["requests"]
        text = mocks.created["live-10.0.0.2"].inputs["config"]
        assert "prometheus.enable = false;" in text
        assert text == edge_config("blue", prometheus_port=None).text

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
