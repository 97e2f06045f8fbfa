"""The nixos platform without a NixOS host, in process: what the renderer writes and what a deploy
sends. tests/integration/test_nixos.py evaluates the Nix for real."""

from __future__ import annotations

import dataclasses
import glob
import io
import os
import tarfile
import time
import types

import pulumi
import pytest
from pulumi.runtime import rpc

from bluegreen import arm_metrics, nginx
from bluegreen.config import ConfigError
from bluegreen.reader import BANNER, URL_PATH, VERSION
from platforms.nixos import bundle, host, render, ssh_deploy
from tests.support.mocks import stack
from tests.support.nixos_cases import (
    ALWAYS,
    EVIL,
    HOLD,
    NODES,
    NOW,
    PROBE_TOKEN,
    ROOT,
    arm_config,
    deployed_file,
    edge_config,
    edge_props,
    module_path,
    props,
)


def module_text(module: str) -> str:
    """The text of a module, all of its files if it is a directory."""
    path = module_path(module)
    files = sorted(glob.glob(os.path.join(path, "*.nix"))) if os.path.isdir(path) else [path]
    return "".join(open(f, encoding="utf-8").read() for f in files)


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
