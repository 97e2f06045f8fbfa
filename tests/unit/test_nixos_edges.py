"""Several edge nodes on nixos (bluegreen:edges): which nodes the live stack deploys and what each
is rendered from, what is refused before anything changes, what a node that a flip in waves does
not move yet keeps, and which writer lease each node serves."""

from __future__ import annotations

import json
import types

import pulumi
import pytest
from pulumi.runtime import rpc

from bluegreen import nginx, probe
from bluegreen.config import ConfigError
from bluegreen.config_parts.edge_sites import MOVING_ENV
from platforms.base import ArmView
from platforms.nixos import edge_hold, host
from tests.support.mocks import stack
from tests.support.nixos_cases import NODES, NOW, PROBE_TOKEN, deployed_file, edge_props

THREE = {"site-a": "10.0.0.2", "site-b": "10.0.0.3", "site-c": "edge-c.example.com"}


@pytest.fixture(autouse=True)
def fixed(monkeypatch):
    """The edge provider's clock and a new edge's probe token, the same in every render."""
    monkeypatch.setattr(host, "time", types.SimpleNamespace(time=lambda: NOW))
    monkeypatch.setattr(nginx, "new_token", lambda: PROBE_TOKEN)


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.created: dict[str, dict] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = {
            k: rpc.unwrap_rpc_secret(v) if rpc.is_rpc_secret(v) else v
            for k, v in args.inputs.items()
        }
        self.created[args.name] = inputs
        state = {**args.inputs, "digest": "d"}
        if args.inputs.get("edge"):  # what EdgeHostProvider computes on create
            state = {**host.EdgeHostProvider().prepare(state, None)[0], "digest": "d"}
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@pytest.fixture
def mocks():
    m = Mocks()
    pulumi.runtime.set_mocks(m, project="bluegreen", stack="live", preview=False)
    pulumi.runtime.set_all_config({"bluegreen:sshKey": "PRIVATE"}, ["bluegreen:sshKey"])
    yield m
    pulumi.runtime.set_all_config({}, [])


def live(**values):
    return stack("live", role="edge", platform="nixos", activeColor="green", **values)


def declare(loaded) -> pulumi.Output:
    arms = {
        c: ArmView(c, f"http://{n[0]}", "v1", n, pulumi.Output.from_input({}))
        for c, n in NODES.items()
    }
    served = loaded.platform.edge("live", None, loaded.settings, arms)
    return pulumi.Output.all(served.exports.get("edges"), served.metrics, served.hosts)


def rendered(inputs: dict) -> str:
    return host.EdgeHostProvider().prepare(inputs, None)[0]["config"]


@pulumi.runtime.test
def test_each_site_is_an_edge_node_of_its_own_rendered_from_the_same_settings(mocks):
    one = declare(live(edgeNode="10.0.0.2"))

    def check(args):
        single = dict(mocks.created["live-10.0.0.2"])
        mocks.created.clear()
        return declare(live(edges=json.dumps(THREE))).apply(lambda out: several(single, out))

    def several(single, out):
        edges, metrics, hosts = out
        a, b, c = (
            mocks.created[n]
            for n in ("live-10.0.0.2", "live-10.0.0.3-site-b", "live-edge-c.example.com-site-c")
        )
        # The first site is the one edge it was, with the other edges beside it: nothing of it
        # is replaced when a stack grows into several.
        assert {k: v for k, v in a.items() if k != edge_hold.PEERS} == single
        assert a[edge_hold.PEERS] == ["http://10.0.0.3:18080/", "http://edge-c.example.com:18080/"]
        assert [x["host"] for x in (a, b, c)] == ["10.0.0.2", "10.0.0.3", "edge-c.example.com"]
        assert c["confirm"]["url"] == "http://edge-c.example.com:18080/"
        # One Prometheus, on the first node; otherwise every node gets the same file.
        assert metrics["url"] == "http://10.0.0.2:19090"
        texts = [rendered(x) for x in (a, b, c)]
        assert "prometheus = {" in texts[0] and "port = 19090;" in texts[0]
        assert texts[1] == texts[2] and "prometheus.enable = false;" in texts[1]
        assert texts[1] == rendered({**a, "edge": {**a["edge"], "prometheusPort": None}})
        assert not any(edge_hold.HOLD in x for x in (a, b, c))
        assert hosts == list(THREE.values())
        assert edges == {
            site: {
                "url": f"http://{node}:18080/",
                "activeColor": "green",
                "weights": {"blue": 0, "green": 100},
                "node": node,
            }
            for site, node in THREE.items()
        }

    return one.apply(check)


@pulumi.runtime.test
def test_a_wave_holds_the_sites_it_does_not_move(mocks, monkeypatch):
    monkeypatch.setenv(MOVING_ENV, '["site-a"]')

    def check(_):
        held = {n: edge_hold.HOLD in x for n, x in mocks.created.items() if "edge" in x}
        assert held == {
            "live-10.0.0.2": False,
            "live-10.0.0.3-site-b": True,
            "live-edge-c.example.com-site-c": True,
        }

    return declare(live(edges=json.dumps(THREE))).apply(check)


def test_a_wave_naming_an_unknown_site_is_refused(mocks, monkeypatch):
    monkeypatch.setenv(MOVING_ENV, '["site-x"]')
    with pytest.raises(ConfigError, match=r"site-a, site-b, site-c\), got \"\[\"site-x\"\]\""):
        declare(live(edges=json.dumps(THREE)))


DNS = {"dnsProvider": "rfc2136", "dnsZone": "example.com.", "dnsServer": "10.0.0.53:53"}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"edgeNode": "10.0.0.2", "edges": json.dumps(THREE)},
            'bluegreen:edgeNode is "10.0.0.2", but bluegreen:edges is set too ('
            + json.dumps(THREE)
            + "), and names each site's edge node: unset bluegreen:edgeNode",
        ),
        (
            {"edges": '{"site-a": "10.0.0.2", "site-b": "edge_b"}'},
            'bluegreen:edges is {"site-a": "10.0.0.2", "site-b": "edge_b"} on the nixos platform, '
            "but each site's place must be the address of its own NixOS edge node, an IP address "
            "or a host name, such as",
        ),
        ({"edges": '{"site-a": "10.0.0.2", "site-b": "edge_b"}'}, "not a host: site-b: 'edge_b'"),
        (
            {"edges": '{"site-a": "10.0.0.2", "site-b": "10.0.0.2"}'},
            "a node used twice: 10.0.0.2 (site-a, site-b)",
        ),
        (
            {"edges": '{"a": "Edge.example.com", "b": "fd00::2", "c": "edge.example.com"}'},
            "a node used twice: edge.example.com (a, c)",
        ),
        (
            {"edges": '{"a": "fd00::2", "b": "fd00:0::2"}'},
            "a node used twice: fd00::2 (a, b)",
        ),
        (
            {"edges": json.dumps(THREE), **DNS},
            'with bluegreen:dnsProvider "rfc2136", but the live name gets an A record for each '
            "edge node, and site-c name their node by host name: give each site its node's IP",
        ),
    ],
)
def test_edge_nodes_that_cannot_be_told_apart_are_refused(values, expected):
    with pytest.raises(ConfigError) as err:
        live(**values)
    (problem,) = err.value.problems
    assert expected in problem and problem.endswith("(nothing was changed)")


def test_edge_nodes_by_address_or_a_dns_switch_take_dns_records():
    assert live(edges='{"site-a": "10.0.0.2", "site-b": "fd00::3"}', **DNS).settings.dns
    assert live(edges=json.dumps(THREE), dnsSwitch="true", **DNS).settings.dns.switch


def test_without_edges_the_edge_node_is_still_required():
    with pytest.raises(ConfigError, match="bluegreen:edgeNode is not set: the nixos platform"):
        live()


def test_a_held_edge_keeps_the_traffic_and_lease_it_served(ssh_calls):
    provider = host.EdgeHostProvider()
    created = provider.create(edge_props("blue")).outs
    holding = {**edge_props("green"), edge_hold.HOLD: True}
    # The pointer moved, but this site waits for its wave: nothing to change, nothing deployed.
    assert provider.diff("id", created, holding).changes is False
    same = provider.update("id", created, holding).outs
    assert len(ssh_calls) == 2
    assert same["edge"]["activeColor"] == "blue" and same["lease"] == created["lease"]
    assert edge_hold.HOLD not in same  # a directive for this update, not a record

    # Another setting changes meanwhile (a new green version): deployed, on the colour it
    # served, and confirmed by that colour.
    newer = {**holding, "edge": {**holding["edge"], "versions": {"blue": "v1", "green": "v3"}}}
    newer["confirm"] = {"url": "http://10.0.0.10:18080/", "headers": {"x-bluegreen-color": "green"}}
    prepared, confirm = provider.prepare(newer, same)
    assert confirm["headers"]["x-bluegreen-color"] == "blue"
    assert prepared["confirm"]["headers"] == {"x-bluegreen-color": "blue"}
    assert provider.diff("id", same, {**newer, "confirm": None}).changes is True
    kept = provider.update("id", same, {**newer, "confirm": None}).outs
    text = deployed_file(ssh_calls[2])
    assert 'activeColor = "blue";' in text and 'green = "v3";' in text
    assert kept["lease"]["fence"] == created["lease"]["fence"]

    # Its wave comes: it moves, and the writer lease with it.
    moved = provider.update("id", kept, edge_props("green")).outs
    assert 'activeColor = "green";' in deployed_file(ssh_calls[4])
    assert moved["lease"]["fence"] == created["lease"]["fence"] + 1


def test_a_site_never_deployed_takes_the_pointer_even_in_a_wave():
    prepared, _ = host.EdgeHostProvider().prepare(
        {**edge_props("green"), edge_hold.HOLD: True}, None
    )
    assert prepared["edge"]["activeColor"] == "green" and edge_hold.HOLD not in prepared


PEERS = ["http://10.0.0.3:18080/", "http://10.0.0.4:18080/"]


@pytest.mark.parametrize(
    ("served", "olds_fence", "fence"),
    [
        # Another edge switched first: this one serves its lease, not one above it.
        ({PEERS[0]: {"color": "green", "fence": 7}}, 6, 7),
        # A new site joins at the lease the others serve.
        ({PEERS[0]: {"color": "green", "fence": 7}}, None, 7),
        # The highest any edge serves, plus one: the pointer moves.
        ({PEERS[0]: {"color": "blue", "fence": 7}, PEERS[1]: {"color": "blue", "fence": 3}}, 3, 8),
        # An edge that cannot be read is left out.
        ({}, 3, 4),
    ],
)
def test_every_edge_that_moves_comes_to_the_same_lease(monkeypatch, served, olds_fence, fence):
    monkeypatch.setattr(host, "peer_lease", served.get)
    props = {**edge_props("green"), edge_hold.PEERS: PEERS}
    olds = None
    if olds_fence is not None:
        olds = {**edge_props("blue"), "lease": {"color": "blue", "fence": olds_fence, "since": 1}}
    prepared, _ = host.EdgeHostProvider().prepare(props, olds, live=True)
    assert prepared["lease"]["fence"] == fence and prepared["lease"]["color"] == "green"


def test_a_held_edge_does_not_follow_the_others(monkeypatch):
    monkeypatch.setattr(host, "peer_lease", lambda url: {"color": "green", "fence": 9})
    olds = {**edge_props("blue"), "lease": {"color": "blue", "fence": 3, "since": 1}}
    props = {**edge_props("green"), edge_hold.PEERS: PEERS, edge_hold.HOLD: True}
    prepared, _ = host.EdgeHostProvider().prepare(props, olds, live=True)
    assert prepared["lease"]["fence"] == 3 and prepared["lease"]["color"] == "blue"


def test_an_edge_that_freezes_writes_holds_the_lease_for_the_colour_it_serves(monkeypatch):
    """While writes are frozen an edge serves no holder; the colour it serves holds the lease,
    so an edge that reads it after it switched follows it rather than outgrowing it."""
    answers = {
        "http://10.0.0.3:18080/_bluegreen/lease": {"holder": None, "fence": 4},
        "http://10.0.0.3:18080/_bluegreen/status": {"live": {"color": "green"}},
    }

    def request(url, timeout=2.0, **_):
        body = json.dumps(answers.get(url, {})).encode()
        return probe.Answer(url=url, status=200 if url in answers else None, headers={}, body=body)

    monkeypatch.setattr(host.probe, "request", request)
    assert host.peer_lease("http://10.0.0.3:18080/") == {"color": "green", "fence": 4}
    assert host.peer_leases(["http://10.0.0.9:18080/"]) == []
