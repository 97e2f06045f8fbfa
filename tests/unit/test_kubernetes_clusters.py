"""Several edges on kubernetes (bluegreen:edges): one copy of the edge per kubeconfig context,
each through its own provider, under Pulumi mocks (no cluster: the mocks answer every object with
its own inputs, so these tests pin what `pulumi up` would apply in each context)."""

from __future__ import annotations

import json

import pulumi
import pytest

from bluegreen.config import ConfigError
from bluegreen.config_parts.edge_sites import MOVING_ENV
from platforms.stack_outputs import READ_OUTPUTS
from tests.support.mocks import StackMocks, build_edge, deploy, install, stack, where

STACKS = {
    f"organization/bluegreen/{color}": {
        "color": color,
        "version": version,
        "endpoint": f"http://shop-{color}.shop.svc.cluster.local",
        "nodes": [f"shop-{color}.shop.svc.cluster.local:80"],
        "serviceName": f"shop-{color}",
    }
    for color, version in (("blue", "v1"), ("green", "v2"))
}
TWO = '{"eu": "prod-eu", "us": "prod-us"}'
THREE = '{"eu": "prod-eu", "us": "prod-us", "ap": "prod-ap"}'
HOST = {"ingressHost": "shop.example.com"}
K8S = ("pulumi:providers:kubernetes", "kubernetes:")


@pytest.fixture
def mocks(monkeypatch):
    monkeypatch.delenv(MOVING_ENV, raising=False)
    yield install(StackMocks(dict(STACKS)))


def live(**values):
    return stack(
        "live",
        **{
            "role": "edge",
            "platform": "kubernetes",
            "kubeContext": "prod-eu",
            "namespace": "shop",
            "prometheusUrl": "http://prometheus.monitoring.svc:9090",
            "activeColor": "blue",
            **values,
        },
    )


def declared(mocks) -> dict[str, tuple[str, str, dict]]:
    """Every kubernetes object and provider: name -> (type, provider's name, inputs)."""
    return {
        name: (a.typ, a.provider.split("::")[-2] if a.provider else "", a.inputs)
        for name, a in mocks.created.items()
        if a.typ.startswith(K8S)
    }


def backend(mocks, name: str) -> str:
    spec = mocks.created[name].inputs["spec"]
    return spec["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]


def outputs(s) -> dict:
    """The live stack's url, generation and platform exports for the config `s`."""
    seen: dict = {}

    @pulumi.runtime.test
    def program():
        edge = build_edge(s)
        keys = ["url", "generation", *sorted(edge.exports)]
        values = [edge.url, edge.generation, *[edge.exports[k] for k in sorted(edge.exports)]]
        return pulumi.Output.all(*values).apply(lambda xs: seen.update(zip(keys, xs, strict=True)))

    program()
    return seen


# --- one copy of the edge per context ----------------------------------------------------------


def test_each_site_gets_a_provider_for_its_context_and_its_own_copy_of_the_edge(mocks):
    deploy(lambda: build_edge(live(edges=THREE, **HOST)))
    objects = declared(mocks)
    providers = {n: o[2]["context"] for n, o in objects.items() if o[0] == K8S[0]}
    # The stack's own provider is kept for the first site, in its context.
    assert providers == {"live-k8s": "prod-eu", "live-k8s-us": "prod-us", "live-k8s-ap": "prod-ap"}
    for suffix, provider in (("", "live-k8s"), ("-us", "live-k8s-us"), ("-ap", "live-k8s-ap")):
        assert mocks.created[provider].inputs["namespace"] == "shop"
        for thing in ("service", "ingress"):
            typ, via, inputs = objects[f"live-{thing}{suffix}"]
            assert via == provider, f"{typ}::live-{thing}{suffix} goes through {via}"
            # The same object in each cluster: the arms' names there are the same.
            assert inputs["metadata"]["name"] == "shop", f"live-{thing}{suffix}"
        selector = mocks.created[f"live-service{suffix}"].inputs["spec"]["selector"]
        assert selector == {"app": "shop", "color": "blue"}, f"live-service{suffix}"
        assert backend(mocks, f"live-ingress{suffix}") == "shop-blue"
    assert len(objects) == 9, sorted(objects)


def test_a_canary_step_splits_at_every_site_in_one_update(mocks):
    deploy(lambda: build_edge(live(edges=TWO, activeColor="green", canaryWeight="25", **HOST)))
    for suffix in ("", "-us"):
        service = mocks.created[f"live-service{suffix}"]
        assert service.inputs["spec"]["selector"]["color"] == "blue", where(service)
        canary = mocks.created[f"live-canary{suffix}"]
        annotations = canary.inputs["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/canary-weight"] == "25", where(canary)
        assert backend(mocks, f"live-canary{suffix}") == "shop-green"


def test_a_first_site_outside_the_stacks_context_gets_a_provider_of_its_own(mocks):
    deploy(lambda: build_edge(live(edges='{"us": "prod-us", "ap": "prod-ap"}')))
    objects = declared(mocks)
    assert "live-k8s" not in objects, "no site is in prod-eu, yet its provider was declared"
    assert mocks.created["live-k8s-us"].inputs["context"] == "prod-us"
    # Today's names, through the new provider: the edge moves out of prod-eu.
    assert objects["live-service"][1] == "live-k8s-us"
    assert objects["live-service-ap"][1] == "live-k8s-ap"


def test_the_stack_exports_what_each_site_serves_and_where(mocks):
    out = outputs(live(edges=TWO, **HOST))
    assert out["edges"] == {
        "eu": {
            "url": "http://shop.example.com/",
            "context": "prod-eu",
            "activeColor": "blue",
            "weights": {"blue": 100, "green": 0},
        },
        "us": {
            "url": "http://shop.example.com/",
            "context": "prod-us",
            "activeColor": "blue",
            "weights": {"blue": 100, "green": 0},
        },
    }
    assert out["url"] == "http://shop.example.com/" and out["serviceName"] == "shop"
    first, second = out["generation"].split(",")
    assert first == second  # the same serving state in both


# --- one edge, as before -----------------------------------------------------------------------


def declarations(mocks) -> dict:
    return {
        n: (a.typ, a.provider, a.inputs)
        for n, a in mocks.created.items()
        if a.typ.startswith(K8S) or a.typ == "bluegreen:index:Edge"
    }


@pytest.mark.parametrize(
    "values",
    [{}, HOST, {**HOST, "activeColor": "green", "canaryWeight": "25", "stickyCanary": "true"}],
)
def test_a_stack_grows_into_several_edges_without_replacing_anything(values):
    """Its one edge (no bluegreen:edges) and the first site in its context declare the same
    objects, through the same provider, with the same inputs."""
    seen = []
    for edges in (None, TWO):
        mocks = install(StackMocks(dict(STACKS)))
        deploy(lambda e=edges: build_edge(live(**values, **({"edges": e} if e else {}))))
        seen.append(declarations(mocks))
    one, two = seen
    assert {n: d for n, d in two.items() if not n.endswith("-us")} == one


def test_one_edge_declares_one_provider_and_no_edges_output(mocks):
    out = outputs(live(**HOST))
    assert set(declared(mocks)) == {"live-k8s", "live-service", "live-ingress"}
    assert mocks.created["live-k8s"].inputs["context"] == "prod-eu"
    assert "edges" not in out and "," not in out["generation"]


# --- a flip in waves ---------------------------------------------------------------------------

BLUE = {"activeColor": "blue", "weights": {"blue": 100, "green": 0}}


class LastOutputs(StackMocks):
    """The mocks, answering the live stack's read of its own last outputs with `last` (numbers
    reach the program as floats, as the engine's do)."""

    def __init__(self, last: dict | Exception) -> None:
        super().__init__(dict(STACKS))
        self.last = last
        self.reads: list[str] = []

    def call(self, args: pulumi.runtime.MockCallArgs):
        name = args.args.get("name")
        if args.token != READ_OUTPUTS or name != "organization/bluegreen/live":
            return {}  # the arms' stacks, and a data stack this project does not have
        self.reads.append(name)
        if isinstance(self.last, Exception):
            raise self.last
        return {"name": name, "outputs": self.last}


def last(**edges) -> dict:
    """The live stack's last outputs with several edges."""
    return {**BLUE, "edges": {site: {"url": "-", **e} for site, e in edges.items()}}


def colors(mocks, *suffixes: str) -> list[str]:
    """The colour each site's live Service selects."""
    return [mocks.created[f"live-service{s}"].inputs["spec"]["selector"]["color"] for s in suffixes]


def test_a_site_a_wave_does_not_move_keeps_what_it_served(monkeypatch):
    mocks = install(LastOutputs(last(eu=BLUE, us=BLUE, ap=BLUE)))
    monkeypatch.setenv(MOVING_ENV, '["eu"]')
    out = outputs(live(edges=THREE, activeColor="green", **HOST))
    assert mocks.reads == ["organization/bluegreen/live"]
    assert colors(mocks, "", "-us", "-ap") == ["green", "blue", "blue"]
    ingresses = [backend(mocks, f"live-ingress{s}") for s in ("", "-us", "-ap")]
    assert ingresses == ["shop-green", "shop-blue", "shop-blue"]
    exported = {site: (e["activeColor"], e["weights"]["green"]) for site, e in out["edges"].items()}
    assert exported == {"eu": ("green", 100), "us": ("blue", 0), "ap": ("blue", 0)}
    # The next wave reads what this one left, and moves the rest.
    mocks = install(LastOutputs({**BLUE, "edges": out["edges"]}))
    monkeypatch.setenv(MOVING_ENV, '["eu", "us"]')
    out = outputs(live(edges=THREE, activeColor="green", **HOST))
    assert colors(mocks, "", "-us", "-ap") == ["green", "green", "blue"]


def test_a_held_site_keeps_its_canary_split_and_a_new_site_takes_the_pointer(monkeypatch):
    split = {"activeColor": "green", "weights": {"blue": 75, "green": 25}}
    mocks = install(LastOutputs(last(eu=BLUE, us=split)))  # ap: never deployed
    monkeypatch.setenv(MOVING_ENV, '["eu"]')
    deploy(lambda: build_edge(live(edges=THREE, activeColor="green", **HOST)))
    assert colors(mocks, "-us", "-ap") == ["blue", "green"]
    canary = mocks.created["live-canary-us"].inputs["metadata"]["annotations"]
    assert canary["nginx.ingress.kubernetes.io/canary-weight"] == "25"
    assert "live-canary" not in mocks.created and "live-canary-ap" not in mocks.created


def test_a_stack_that_had_one_edge_holds_it_as_its_first_site(monkeypatch):
    """Its last outputs have no `edges`: the first site's objects are the single edge's."""
    mocks = install(LastOutputs({**BLUE, "url": "http://shop.shop.svc.cluster.local/"}))
    monkeypatch.setenv(MOVING_ENV, '["us"]')
    deploy(lambda: build_edge(live(edges=THREE, activeColor="green")))
    assert colors(mocks, "", "-us", "-ap") == ["blue", "green", "green"]


def test_without_a_wave_every_site_takes_the_pointer_and_nothing_is_read(monkeypatch):
    monkeypatch.delenv(MOVING_ENV, raising=False)
    mocks = install(LastOutputs(last(eu=BLUE, us=BLUE)))
    deploy(lambda: build_edge(live(edges=TWO, activeColor="green")))
    assert colors(mocks, "", "-us") == ["green", "green"]
    assert mocks.reads == []


@pytest.mark.parametrize(
    "outputs_before",
    [
        last(eu=BLUE, us={"activeColor": "red", "weights": BLUE["weights"]}),
        last(eu=BLUE, us={"activeColor": "blue", "weights": {"blue": 100}}),
        last(eu=BLUE, us={"activeColor": "blue", "weights": {"blue": 90, "green": 0}}),
        last(eu=BLUE, us={"activeColor": "blue", "weights": {"blue": 99.5, "green": 0.5}}),
        {**BLUE, "edges": "us"},
    ],
)
def test_a_held_site_whose_last_outputs_say_no_traffic_is_refused(monkeypatch, outputs_before):
    mocks = install(LastOutputs(outputs_before))
    monkeypatch.setenv(MOVING_ENV, '["eu"]')
    with pytest.raises(ConfigError) as err:
        deploy(lambda: build_edge(live(edges=TWO, activeColor="green")))
    message = str(err.value)
    assert message.startswith(f"{MOVING_ENV} holds back sites of bluegreen:edges, but stack "), (
        message
    )
    assert "organization/bluegreen/live's last outputs do not say what" in message, message
    assert message.endswith("(nothing was changed)"), message
    assert declared(mocks) == {}, "refused, yet kubernetes objects were declared"


def test_a_failed_read_fails_the_wave_before_any_site_moves(monkeypatch):
    mocks = install(LastOutputs(RuntimeError("backend unreachable")))
    monkeypatch.setenv(MOVING_ENV, '["eu"]')
    with pytest.raises(Exception, match="backend unreachable"):
        deploy(lambda: build_edge(live(edges=TWO, activeColor="green")))
    assert declared(mocks) == {}, "the read failed, yet kubernetes objects were declared"


# --- what cannot work is refused ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("edges", "why", "allowed"),
    [
        (
            '{"eu": "prod-eu", "us": "prod-eu"}',
            "each site is a kubeconfig context holding one copy of the edge, and prod-eu is "
            "given to eu, us",
            "give each site a context of its own",
        ),
        (
            '{"us": "prod-us", "eu": "prod-eu"}',
            "its site eu is in bluegreen:kubeContext prod-eu, where this stack's edge is; the "
            "first site (us) keeps that edge's objects and moves them to its own context",
            "put eu first, so that it keeps the edge's objects where they are",
        ),
    ],
)
def test_contexts_that_cannot_each_hold_one_copy_are_refused(mocks, edges, why, allowed):
    with pytest.raises(ConfigError) as err:
        deploy(lambda: build_edge(live(edges=edges)))
    (problem,) = [p for p in err.value.problems if p.startswith("bluegreen:edges ")]
    assert problem.startswith(f'bluegreen:edges is "{json.dumps(json.loads(edges))}", but ')
    assert why in problem and allowed in problem, problem
    assert problem.endswith("(nothing was changed)"), problem
    assert mocks.created == {}, f"refused config, yet {list(mocks.created)} were declared"


@pytest.mark.parametrize("context", ["", "prod eu", "-prod", 'prod"eu'])
def test_the_stacks_context_must_be_a_context_name(context):
    with pytest.raises(ConfigError) as err:
        live(kubeContext=context)
    assert (
        "bluegreen:kubeContext must be a kubeconfig context name: letters, digits and ._:@/-, "
        "starting with a letter or digit (kind-dev, gke_project_zone_name, arn:aws:eks:"
    ) in str(err.value)
    assert f'got "{context}"' in str(err.value)


@pytest.mark.parametrize(
    "context",
    ["kind-dev", "gke_shop_europe-west1_prod", "arn:aws:eks:eu-west-1:1:cluster/prod", "a@b"],
)
def test_the_contexts_cloud_tools_write_are_taken(context):
    assert live(kubeContext=context).platform.cluster.context == context


def test_a_site_whose_place_is_no_context_name_is_refused_naming_the_key():
    with pytest.raises(ConfigError) as err:
        live(edges='{"eu": "prod eu"}')
    assert "bluegreen:edges must be a JSON object of up to 16 edges" in str(err.value)
    assert "prod eu" in str(err.value)


def test_the_kubernetes_edge_checks_each_place_itself():
    """Whatever the shared alphabet of places lets through, a site is a context name."""
    import dataclasses

    from bluegreen.config_parts.edge_sites import Site, Sites
    from platforms.kubernetes.k8s_sites import refusals

    s = live(edges=TWO)
    sites = Sites((Site("eu", "prod-eu"), Site("us", "prod us")), (("eu", "us"),))
    (problem,) = refusals(s.platform.cluster, dataclasses.replace(s.settings, sites=sites))
    assert problem.startswith('bluegreen:edges is "{"eu": "prod-eu", "us": "prod us"}", but ')
    assert "us: 'prod us' is not" in problem and "give each site a kubeconfig context" in problem
