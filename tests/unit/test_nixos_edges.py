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
from platforms import stack_outputs
from platforms.base import ArmView
from platforms.nixos import edge_hold, host, lease_release, ssh_deploy
from platforms.nixos.ssh_deploy import DeployError
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
        self.last: dict = {}
        """The live stack's last outputs, as the engine's readStackOutputs answers them."""
        self.reads = 0

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
        if args.token != stack_outputs.READ_OUTPUTS:
            return {}
        self.reads += 1
        return {"name": args.args["name"], "outputs": self.last}


@pytest.fixture
def mocks():
    m = Mocks()
    pulumi.runtime.set_mocks(m, project="bluegreen", stack="live", preview=False)
    pulumi.runtime.set_all_config({"bluegreen:sshKey": "PRIVATE"}, ["bluegreen:sshKey"])
    yield m
    pulumi.runtime.set_all_config({}, [])


def live(**values):
    return stack("live", role="edge", platform="nixos", **{"activeColor": "green", **values})


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
        single, alone = dict(mocks.created["live-10.0.0.2"]), set(mocks.created)
        mocks.created.clear()
        return declare(live(edges=json.dumps(THREE))).apply(lambda out: several(single, out, alone))

    def several(single, out, alone):
        edges, metrics, hosts = out
        a, b, c = (
            mocks.created[n]
            for n in ("live-10.0.0.2", "live-10.0.0.3-site-b", "live-edge-c.example.com-site-c")
        )
        # The first site is the one edge it was, with the other edges beside it and the one
        # writer lease they share: nothing of it is replaced when a stack grows into several.
        several = (edge_hold.PEERS, edge_hold.SHARED)
        assert {k: v for k, v in a.items() if k not in several} == single
        assert edge_hold.SHARED not in single and alone == {"live-10.0.0.2"}
        assert a[edge_hold.PEERS] == ["http://10.0.0.3:18080/", "http://edge-c.example.com:18080/"]
        assert all(x[edge_hold.SHARED] == {"holder": "green"} for x in (a, b, c))
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


def last(**colors: str) -> dict:
    """The live stack's last outputs with each site of THREE serving a colour."""
    return {
        "activeColor": "blue",
        "weights": {"blue": 100, "green": 0},
        "edges": {
            site: {"url": "-", "activeColor": c, "weights": {c: 100.0, OTHER[c]: 0.0}}
            for site, c in colors.items()
        },
    }


OTHER = {"blue": "green", "green": "blue"}
BLUE = last(**dict.fromkeys(THREE, "blue"))


def test_one_stamp_releases_the_lease_on_every_node_once_all_are_deployed(mocks):
    pulumi.runtime.test(lambda: declare(live(edges=json.dumps(THREE))))()
    stamp = mocks.created["live-lease"]
    # It reaches every node as its deploy does, and takes the lease each host recorded, so it
    # runs after all of them.
    assert {s: n["host"] for s, n in stamp["nodes"].items()} == THREE
    assert all(n["leaseDir"] == lease_release.LEASE_DIR for n in stamp["nodes"].values())
    assert stamp["sshKey"] == "PRIVATE" and set(stamp["leases"]) == set(THREE)


@pulumi.runtime.test
def test_a_wave_holds_the_sites_it_does_not_move(mocks, monkeypatch):
    monkeypatch.setenv(MOVING_ENV, '["site-a"]')
    mocks.last = BLUE

    def check(_):
        held = {n: edge_hold.HOLD in x for n, x in mocks.created.items() if "edge" in x}
        assert held == {
            "live-10.0.0.2": False,
            "live-10.0.0.3-site-b": True,
            "live-edge-c.example.com-site-c": True,
        }
        # The nodes serve blue and green after it: nobody holds the writer lease, on any node.
        shared = [x[edge_hold.SHARED] for x in mocks.created.values() if "edge" in x]
        assert shared == [{"holder": ""}] * 3

    return declare(live(edges=json.dumps(THREE))).apply(check)


@pulumi.runtime.test
def test_a_wave_whose_held_sites_serve_the_pointer_already_keeps_a_holder(mocks, monkeypatch):
    monkeypatch.setenv(MOVING_ENV, '["site-a"]')
    mocks.last = last(**dict.fromkeys(THREE, "green"))

    def check(_):
        shared = [x[edge_hold.SHARED] for x in mocks.created.values() if "edge" in x]
        assert shared == [{"holder": "green"}] * 3

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


def shared(active: str, holder: str | None, **extra) -> dict:
    """A site of several's inputs: the other edges, and who holds the one lease."""
    return {
        **edge_props(active),
        edge_hold.PEERS: PEERS,
        edge_hold.SHARED: {"holder": holder or ""},
    }


def recorded(color: str | None, fence: int, active: str = "blue") -> dict:
    """What a site's host recorded last: serving `active`, the lease held by `color`."""
    lease = {"color": color, "fence": fence, "since": 1, "handover": 5, "shared": True}
    return {**edge_props(active), "lease": lease}


@pytest.mark.parametrize(
    ("holder", "olds", "served", "fence"),
    [
        # The first wave: every node, held or moved, serves it held by nobody one fence up...
        (None, ("green", 2), {PEERS[0]: ("green", 2), PEERS[1]: ("green", 2)}, 3),
        # ... and a node that switched first is followed, not outgrown.
        (None, ("green", 2), {PEERS[0]: (None, 3), PEERS[1]: ("green", 2)}, 3),
        # The next waves keep that fence.
        (None, (None, 3), {PEERS[0]: (None, 3), PEERS[1]: (None, 3)}, 3),
        # The last wave: the target colour one fence up, whichever node switches first.
        ("green", (None, 3), {PEERS[0]: (None, 3), PEERS[1]: (None, 3)}, 4),
        ("green", (None, 3), {PEERS[0]: ("green", 4), PEERS[1]: (None, 3)}, 4),
        # A node a failed update left behind catches up; one restored to another holder is
        # outgrown.
        ("green", ("green", 3), {PEERS[0]: ("green", 5)}, 5),
        ("green", ("green", 3), {PEERS[0]: ("blue", 4)}, 5),
        # A new site joins at the lease the others serve; a node that cannot be read is left out.
        ("green", None, {PEERS[0]: ("green", 2), PEERS[1]: ("green", 2)}, 2),
        ("green", ("blue", 3), {}, 4),
    ],
)
def test_every_node_of_several_comes_to_one_lease(monkeypatch, holder, olds, served, fence):
    def peer_lease(url, wanted):
        assert wanted == holder  # read for this holder (an edge in maintenance serves none)
        color, f = served.get(url, (None, None))
        return {"color": color, "fence": f} if f else None

    monkeypatch.setattr(host, "peer_lease", peer_lease)
    before = recorded(*olds) if olds else None
    prepared, _ = host.EdgeHostProvider().prepare(shared("green", holder), before, live=True)
    lease = prepared["lease"]
    assert (lease["color"], lease["fence"], lease["shared"]) == (holder, fence, True)
    text = prepared["config"]
    assert f"fence = {fence};" in text and "shared = true;" in text
    assert f"holder = {json.dumps(holder) if holder else 'null'};" in text
    if olds and olds[1] == fence:
        assert lease["since"] == 1  # the same lease: its record is kept


def test_a_held_node_is_switched_once_for_the_lease_with_its_traffic_unchanged(
    monkeypatch, ssh_calls
):
    served = {"lease": {"color": "blue", "fence": 2}}
    monkeypatch.setattr(host, "peer_lease", lambda url, holder: dict(served["lease"]))
    provider = host.EdgeHostProvider()
    created = provider.create(shared("blue", "blue")).outs
    assert (created["lease"]["color"], created["lease"]["fence"]) == ("blue", 2)

    # The first wave moves another site: this one keeps blue, and serves the lease held by
    # nobody at a new fence, which takes a switch.
    holding = {**shared("green", None), edge_hold.HOLD: True}
    assert provider.diff("id", created, holding).changes is True
    held = provider.update("id", created, holding).outs
    text = deployed_file(ssh_calls[-1 - 1])
    assert 'activeColor = "blue";' in text and "holder = null;" in text and "fence = 3;" in text
    assert held["edge"]["activeColor"] == "blue" and held["lease"]["color"] is None

    # The next wave holds it again: the lease stays, nothing to switch.
    served["lease"] = {"color": None, "fence": 3}
    assert provider.diff("id", held, holding).changes is False


def test_a_node_behind_the_others_shows_a_change_in_its_diff(monkeypatch):
    """A diff reads the nodes too: a node a failed update left on a lower fence is not left out
    of the next update, which brings every node to one lease."""
    monkeypatch.setattr(host, "peer_lease", lambda url, holder: {"color": "green", "fence": 5})
    provider = host.EdgeHostProvider()
    olds = {**provider.prepare(shared("green", "green"), None)[0], "digest": "d"}
    assert olds["lease"]["fence"] == 1  # created alone, no node read
    assert provider.diff("id", olds, shared("green", "green")).changes is True


def test_a_node_restored_after_a_failed_switch_keeps_the_lease_unstamped_for_its_holder():
    provider = host.EdgeHostProvider()
    previous = {**recorded(None, 3, "blue"), "probeToken": PROBE_TOKEN}
    failed = recorded("green", 4, "green")
    back = provider.restoring(previous, failed)
    assert back["lease"]["color"] is None and back["lease"]["shared"] is True
    assert back["lease"]["fence"] == 5 and "holder = null;" in back["config"]


def test_an_edge_in_maintenance_is_read_for_the_holder_the_lease_goes_to(monkeypatch):
    """An edge serves no holder both for nobody and while writes are frozen: its status says
    which, and a frozen one holds the lease for the colour it serves, unless nobody is to."""
    answers = {
        "http://10.0.0.3:18080/_bluegreen/lease": {"holder": None, "fence": 4},
        "http://10.0.0.3:18080/_bluegreen/status": {"live": {"color": "green"}, "readOnly": True},
    }

    def request(url, timeout=2.0, **_):
        body = json.dumps(answers.get(url, {})).encode()
        return probe.Answer(url=url, status=200 if url in answers else None, headers={}, body=body)

    monkeypatch.setattr(host.probe, "request", request)
    url = "http://10.0.0.3:18080/"
    assert host.peer_lease(url, "green") == {"color": "green", "fence": 4}
    assert host.peer_lease(url, None) == {"color": None, "fence": 4}
    answers[url + "_bluegreen/status"]["readOnly"] = False  # not frozen: nobody holds it
    assert host.peer_lease(url, "green") == {"color": None, "fence": 4}
    assert host.peer_leases(["http://10.0.0.9:18080/"], "green") == []


def test_the_lease_is_held_by_the_colour_every_site_serves_or_by_nobody():
    weights = {"blue": 0, "green": 100}
    assert lease_release.holder({"a": ("green", weights), "b": ("green", weights)}) == "green"
    assert lease_release.holder({"a": ("green", weights), "b": ("blue", weights)}) is None


def reach_all_but(*down: str):
    """A stand-in for ssh_deploy.reachable: every host answers but `down`; the hosts asked."""
    asked: list[str] = []

    def reachable(props):
        asked.append(props["host"])
        assert props["sshKey"] == "PRIVATE" and props["port"] == 22
        return "Connection refused" if props["host"] in down else None

    return reachable, asked


def test_a_flip_is_refused_while_a_node_deployed_before_cannot_be_reached(mocks, monkeypatch):
    mocks.last = BLUE
    reachable, asked = reach_all_but("10.0.0.3")
    monkeypatch.setattr(ssh_deploy, "reachable", reachable)
    loaded = live(edges=json.dumps(THREE))
    with pytest.raises(ConfigError) as err:
        loaded.platform.preflight(loaded.settings)
    assert err.value.problems == [
        "bluegreen:activeColor green would move traffic, but the edge node site-b (10.0.0.3: "
        "Connection refused) cannot be reached over ssh: a flip moves every edge or none. Bring "
        "it back, or take it out of bluegreen:edges (nothing was changed)"
    ]
    assert sorted(asked) == sorted(THREE.values())  # all at once, before anything changes
    # A wave that holds it back is refused too: it would be switched for the lease.
    monkeypatch.setenv(MOVING_ENV, '["site-a"]')
    with pytest.raises(ConfigError, match="site-b"):
        loaded.platform.preflight(loaded.settings)


@pytest.mark.parametrize(
    ("outputs", "values"),
    [
        (BLUE, {"activeColor": "blue"}),  # nothing moves: the way back for a node
        ({}, {}),  # never deployed: each node's deploy says whether it answers
        (last(**{"site-a": "green"}), {}),  # only site-a was deployed, and serves the pointer
    ],
)
def test_an_update_that_moves_nothing_asks_no_node(mocks, monkeypatch, outputs, values):
    mocks.last = outputs
    reachable, asked = reach_all_but(*THREE.values())
    monkeypatch.setattr(ssh_deploy, "reachable", reachable)
    loaded = live(edges=json.dumps(THREE), **values)
    loaded.platform.preflight(loaded.settings)
    assert asked == [] and mocks.reads == 1


def test_one_edge_reads_nothing_and_asks_nothing_before_its_update(mocks, monkeypatch):
    reachable, asked = reach_all_but("10.0.0.2")
    monkeypatch.setattr(ssh_deploy, "reachable", reachable)
    loaded = live(edgeNode="10.0.0.2")
    loaded.platform.preflight(loaded.settings)
    assert asked == [] and mocks.reads == 0


def stamp_props(**leases) -> dict:
    nodes = {
        site: {
            "host": host_,
            "user": "root",
            "port": 22,
            "knownHosts": "/tmp/bluegreen-test/known_hosts",
            "remoteDir": "/etc/nixos/bluegreen",
            "leaseDir": lease_release.LEASE_DIR,
        }
        for site, host_ in THREE.items()
    }
    return {"nodes": nodes, "leases": leases, "sshKey": "PRIVATE"}


GREEN_4 = {"color": "green", "fence": 4, "since": 1, "handover": 5, "shared": True}


def test_the_stamp_refuses_nodes_that_serve_different_leases(ssh_calls):
    props = stamp_props(**{"site-a": GREEN_4, "site-b": {**GREEN_4, "fence": 5}, "site-c": GREEN_4})
    with pytest.raises(DeployError) as err:
        lease_release.EdgeLeaseStampProvider().create(props)
    assert "site-b (10.0.0.3) serves fence 5 held by green" in str(err.value)
    assert "site-a (10.0.0.2) serves fence 4 held by green" in str(err.value)
    assert ssh_calls == []  # no node stamped


def test_the_stamp_stamps_every_node_once_and_only_when_the_lease_changes(ssh_calls):
    provider = lease_release.EdgeLeaseStampProvider()
    props = stamp_props(**dict.fromkeys(THREE, GREEN_4))
    provider.create(props)
    hosts = sorted(argv[-2].split("@")[1] for argv, _ in ssh_calls)
    assert hosts == sorted(THREE.values())
    assert all(
        argv[-1] == lease_release.stamp_script(lease_release.LEASE_DIR, 4) for argv, _ in ssh_calls
    )
    assert (
        provider.diff("lease", props, stamp_props(**dict.fromkeys(THREE, GREEN_4))).changes is False
    )
    moved = stamp_props(**dict.fromkeys(THREE, {**GREEN_4, "fence": 5}))
    assert provider.diff("lease", props, moved).changes is True
    unknown = stamp_props(**dict.fromkeys(THREE, "04da6b54-80e4-46f7-96ec-b56ff0331ba9"))
    assert provider.diff("lease", props, unknown).changes is True
