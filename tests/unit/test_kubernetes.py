"""The Kubernetes adapter under Pulumi mocks: the arm's Deployment and Service, the live switch.

No cluster is involved: the mocks answer every object with its own inputs, so these tests pin the
manifests `pulumi up` would apply. `set_mocks` is process-global, so every test installs its own
through the fixture.
"""

from __future__ import annotations

import pulumi
import pytest

from bluegreen.config import ConfigError
from tests.support.mocks import StackMocks as Mocks
from tests.support.mocks import build_arm, build_edge, deploy, install, maintenance, stack, where

SNIPPET = "nginx.ingress.kubernetes.io/configuration-snippet"


def arm_outputs(color: str, version: str) -> dict:
    return {
        "color": color,
        "version": version,
        "endpoint": f"http://shop-{color}.shop.svc.cluster.local",
        "nodes": [f"shop-{color}.shop.svc.cluster.local:80"],
        "serviceName": f"shop-{color}",
    }


STACKS = {
    "organization/bluegreen/blue": arm_outputs("blue", "v1"),
    "organization/bluegreen/green": arm_outputs("green", "v2"),
}


@pytest.fixture
def mocks():
    yield install(Mocks(dict(STACKS)))


PROMETHEUS = "http://prometheus.monitoring.svc:9090"


def settings(name: str, **values):
    if values.get("role") == "edge":
        values.setdefault("prometheusUrl", PROMETHEUS)
    return stack(
        name, **{"platform": "kubernetes", "kubeContext": "prod-eu", "namespace": "shop", **values}
    )


def arm_settings(color: str = "blue", **values):
    return settings(
        color,
        role="arm",
        color=color,
        version="v7",
        image="registry.example.com/shop",
        appPort="8080",
        healthPath="/healthz/ready",
        **values,
    )


# --- arms --------------------------------------------------------------------------------------


def test_arm_objects_go_through_an_explicit_provider_for_the_configured_context(mocks):
    deploy(lambda: build_arm(arm_settings()))
    provider = mocks.created["blue-k8s"]
    assert provider.typ == "pulumi:providers:kubernetes", where(provider)
    assert provider.inputs["context"] == "prod-eu", where(provider)
    assert provider.inputs["namespace"] == "shop", where(provider)
    for name in ("blue-deployment", "blue-service"):
        obj = mocks.created[name]
        assert obj.provider.startswith("urn:") and "blue-k8s" in obj.provider, where(obj)


def test_arm_deployment_is_ready_only_when_the_readiness_path_answers(mocks):
    deploy(lambda: build_arm(arm_settings(replicas="3")))
    deployment = mocks.created["blue-deployment"]
    spec = deployment.inputs["spec"]
    assert deployment.inputs["metadata"]["name"] == "shop-blue", where(deployment)
    assert spec["replicas"] == 3, where(deployment)
    assert spec["selector"]["matchLabels"] == {"app": "shop", "color": "blue"}, where(deployment)
    pod = spec["template"]
    assert pod["metadata"]["labels"] == {"app": "shop", "color": "blue", "version": "v7"}, where(
        deployment
    )
    (container,) = pod["spec"]["containers"]
    probe = container["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/healthz/ready", 8080), where(deployment)
    assert container["image"] == "registry.example.com/shop:v7", where(deployment)
    assert "--color=blue" in container["args"] and "--version=v7" in container["args"], where(
        deployment
    )


@pulumi.runtime.test
def test_arm_service_selects_its_colour_and_is_the_direct_endpoint(mocks):
    arm = build_arm(arm_settings("green"))

    def check(args):
        urn, endpoint, nodes, service_name = args
        assert endpoint == "http://shop-green.shop.svc.cluster.local", urn
        assert nodes == ["shop-green.shop.svc.cluster.local:80"], urn
        assert service_name == "shop-green", urn
        service = mocks.created["green-service"]
        spec = service.inputs["spec"]
        assert spec["selector"] == {"app": "shop", "color": "green"}, where(service)
        assert spec["type"] == "ClusterIP", where(service)
        assert spec["ports"][0]["targetPort"] == 8080, where(service)

    return pulumi.Output.all(arm.urn, arm.endpoint, arm.nodes, arm.exports["serviceName"]).apply(
        check
    )


@pytest.mark.parametrize(("replicas", "skip"), [("0", True), ("2", False)])
def test_arm_scaled_to_zero_does_not_wait_for_endpoints(mocks, replicas, skip):
    deploy(lambda: build_arm(arm_settings(replicas=replicas)))
    service = mocks.created["blue-service"]
    annotations = service.inputs["metadata"].get("annotations") or {}
    assert (annotations.get("pulumi.com/skipAwait") == "true") is skip, where(service)


def test_image_with_its_own_tag_or_digest_is_kept():
    from platforms.kubernetes.k8s_arm import image_for

    assert image_for("registry.example.com:5000/shop", "v2") == "registry.example.com:5000/shop:v2"
    assert image_for("shop:2024-01", "v2") == "shop:2024-01"
    assert image_for("shop@sha256:" + "a" * 64, "v2") == "shop@sha256:" + "a" * 64


# --- the live switch ---------------------------------------------------------------------------


@pytest.mark.parametrize("active", ["blue", "green"])
def test_live_service_selector_follows_active_color(mocks, active):
    deploy(lambda: build_edge(settings("live", role="edge", activeColor=active)))
    service = mocks.created["live-service"]
    assert service.inputs["metadata"]["name"] == "shop", where(service)
    assert service.inputs["spec"]["selector"] == {"app": "shop", "color": active}, where(service)
    assert "live-ingress" not in mocks.created, "no ingressHost, yet an Ingress was declared"


@pulumi.runtime.test
def test_edge_url_is_the_live_service_without_an_ingress(mocks):
    edge = build_edge(settings("live", role="edge", activeColor="blue"))

    def check(args):
        urn, url = args
        assert url == "http://shop.shop.svc.cluster.local/", urn

    return pulumi.Output.all(edge.urn, edge.url).apply(check)


@pytest.mark.parametrize("active", ["blue", "green"])
def test_ingress_routes_the_host_to_the_live_colours_own_service(mocks, active):
    """Not to the live Service: ingress-nginx's metrics name the backend Service, and only the
    arms' own Services name one colour each."""
    s = settings("live", role="edge", activeColor=active, ingressHost="shop.example.com")
    deploy(lambda: build_edge(s))
    ingress = mocks.created["live-ingress"]
    spec = ingress.inputs["spec"]
    assert spec["ingressClassName"] == "nginx", where(ingress)
    (rule,) = spec["rules"]
    assert rule["host"] == "shop.example.com", where(ingress)
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": f"shop-{active}", "port": {"number": 80}}, where(ingress)
    assert SNIPPET not in ingress.inputs["metadata"].get("annotations", {}), where(ingress)
    assert "live-canary" not in mocks.created, "weights 100/0, yet a canary Ingress was declared"


def test_maintenance_snippet_refuses_writes_with_retry_after_and_json(mocks):
    s = settings(
        "live",
        role="edge",
        activeColor="blue",
        ingressHost="shop.example.com",
        maintenance="true",
        maintenanceRetryAfter="120",
    )
    deploy(lambda: build_edge(s))
    ingress = mocks.created["live-ingress"]
    snippet = ingress.inputs["metadata"]["annotations"][SNIPPET]
    assert "if ($request_method ~ ^(POST|PUT|PATCH|DELETE)$) {" in snippet, where(ingress)
    assert '"Retry-After: 120"' in snippet, where(ingress)
    assert 'return 503 \'{"error":"maintenance"' in snippet, where(ingress)


def test_canary_step_splits_through_a_canary_ingress(mocks):
    s = settings(
        "live",
        role="edge",
        activeColor="green",
        canaryWeight="25",
        ingressHost="shop.example.com",
    )
    deploy(lambda: build_edge(s))
    # A Service cannot split: it stays with the colour that has most of the traffic.
    service = mocks.created["live-service"]
    assert service.inputs["spec"]["selector"] == {"app": "shop", "color": "blue"}, where(service)
    canary = mocks.created["live-canary"]
    annotations = canary.inputs["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/canary"] == "true", where(canary)
    assert annotations["nginx.ingress.kubernetes.io/canary-weight"] == "25", where(canary)
    backend = canary.inputs["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "shop-green", where(canary)
    main = mocks.created["live-ingress"]
    backend = main.inputs["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "shop-blue", where(main)


def test_canary_without_an_ingress_is_refused_before_anything_changes():
    s = settings("live", role="edge", activeColor="green", canaryWeight="25")
    with pytest.raises(ConfigError, match=r"bluegreen:canaryWeight 25 .* ingress-nginx canary"):
        s.preflight()


def test_maintenance_without_an_ingress_is_refused_before_anything_changes():
    s = settings("live", role="edge", activeColor="blue", maintenance="true")
    with pytest.raises(ConfigError, match="bluegreen:maintenance true .* without an Ingress"):
        s.preflight()


@pytest.mark.parametrize(
    "banner",
    [
        'x"; return 200 "owned',  # closes the header string and adds a directive
        "x\nreturn 200;",  # a new line is a new directive
        "$http_cookie",  # a variable would leak request data into the header
        "a} server { listen 81;",  # closes the block
    ],
)
def test_maintenance_snippet_refuses_injection(banner):
    from platforms.kubernetes.ingress import maintenance_snippet

    with pytest.raises(ValueError, match="refusing to render"):
        maintenance_snippet(maintenance(banner=banner))


def test_maintenance_snippet_refuses_a_status_other_than_503_or_423():
    from platforms.kubernetes.ingress import maintenance_snippet

    with pytest.raises(ValueError, match="must be 423 or 503, got 200"):
        maintenance_snippet(maintenance(status=200))


def test_maintenance_snippet_carries_a_plain_banner():
    from platforms.kubernetes.ingress import maintenance_snippet

    snippet = maintenance_snippet(maintenance(banner="Back at 14:00 (UTC)"))
    assert 'more_set_headers "X-Bluegreen-Banner: Back at 14:00 (UTC)";' in snippet


# --- the hold's metrics source -------------------------------------------------------------------


def exported_metrics(**values) -> dict:
    """The live stack's `metrics` output for these keys."""
    seen: dict = {}

    @pulumi.runtime.test
    def program():
        edge = build_edge(settings("live", role="edge", **values))
        return edge.exports["metrics"].apply(seen.update)

    program()
    return seen


def test_with_an_ingress_the_hold_reads_ingress_nginx_per_arm_service(mocks):
    from platforms.kubernetes.ingress import INGRESS_QUERIES

    source = exported_metrics(activeColor="green", ingressHost="shop.example.com")
    assert source == {
        "source": "prometheus",
        "url": PROMETHEUS,
        "queries": INGRESS_QUERIES,
        "selectors": {
            "blue": 'namespace="shop",service="shop-blue"',
            "green": 'namespace="shop",service="shop-green"',
        },
    }
    # Each colour's selector names the Service an Ingress proxies that colour's traffic to.
    main = mocks.created["live-ingress"].inputs["spec"]["rules"][0]["http"]["paths"][0]
    assert f'service="{main["backend"]["service"]["name"]}"' in source["selectors"]["green"]
    assert INGRESS_QUERIES["requests"] == "sum(nginx_ingress_controller_requests{$selector})"
    assert '{$selector,status=~"5.."}' in INGRESS_QUERIES["errors"]
    assert INGRESS_QUERIES["p95"] == (
        "histogram_quantile(0.95, sum by (le) "
        "(increase(nginx_ingress_controller_request_duration_seconds_bucket{$selector}[$window])))"
    )


def test_during_a_canary_each_colour_is_read_where_its_ingress_sends_it(mocks):
    source = exported_metrics(
        activeColor="green", canaryWeight="25", ingressHost="shop.example.com"
    )
    backends = {
        name: mocks.created[name].inputs["spec"]["rules"][0]["http"]["paths"][0]["backend"]
        for name in ("live-ingress", "live-canary")
    }
    served = {b["service"]["name"] for b in backends.values()}
    assert served == {"shop-blue", "shop-green"}
    for color, selector in source["selectors"].items():
        assert f'service="shop-{color}"' in selector


def test_without_an_ingress_the_hold_reads_the_arms_own_metrics_by_colour(mocks):
    from bluegreen.arm_metrics import APP_QUERIES

    source = exported_metrics(activeColor="blue", promqlErrors="sum(my_5xx{$selector})")
    assert source["url"] == PROMETHEUS
    assert source["selectors"] == {"blue": 'color="blue"', "green": 'color="green"'}
    assert source["queries"] == {**APP_QUERIES, "errors": "sum(my_5xx{$selector})"}


def test_a_missing_prometheus_url_is_refused_naming_the_key():
    with pytest.raises(ConfigError) as err:
        settings("live", role="edge", activeColor="blue", prometheusUrl=None)
    assert "bluegreen:prometheusUrl is not set: the kubernetes platform runs no Prometheus" in str(
        err.value
    )


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("prometheusUrl", "prometheus.monitoring.svc:9090", "an http:// or https:// URL"),
        ("metrics", "accessLog", '"prometheus" on the kubernetes platform'),
        (
            "promqlRequests",
            "sum(x{$selector}[$window])",
            "a PromQL template using exactly $selector ",
        ),
        ("promqlP95", "max(x{$selector})", "a PromQL template using exactly $selector and $window"),
    ],
)
def test_the_edge_refuses_metrics_keys_it_cannot_serve(key, value, allowed):
    with pytest.raises(ConfigError) as err:
        settings("live", role="edge", activeColor="blue", **{key: value})
    assert f"bluegreen:{key} must be {allowed}" in str(err.value)
    assert f'got "{value}"' in str(err.value)


# --- shadow traffic, and what ingress-nginx cannot do --------------------------------------------

MIRROR = "nginx.ingress.kubernetes.io/mirror-target"
MIRROR_HOST = "nginx.ingress.kubernetes.io/mirror-host"
SHADOW = {"ingressHost": "shop.example.com", "shadow": "100", "shadowWrites": "true"}


def ingress_annotations(mocks) -> dict:
    return mocks.created["live-ingress"].inputs["metadata"].get("annotations") or {}


@pytest.mark.parametrize(("active", "idle"), [("blue", "green"), ("green", "blue")])
def test_shadow_mirrors_every_request_to_the_idle_colours_own_service(mocks, active, idle):
    deploy(lambda: build_edge(settings("live", role="edge", activeColor=active, **SHADOW)))
    ingress = mocks.created["live-ingress"]
    annotations = ingress_annotations(mocks)
    expected = f"http://shop-{idle}.shop.svc.cluster.local:80$request_uri"
    assert annotations[MIRROR] == expected, where(ingress)
    # The idle arm sees the Host users sent, not its own Service name.
    assert annotations[MIRROR_HOST] == "shop.example.com", where(ingress)
    backend = ingress.inputs["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == f"shop-{active}", where(ingress)


def test_a_flip_moves_the_mirror_to_the_colour_it_left():
    targets = {}
    for active in ("blue", "green"):  # before and after the flip: only activeColor changes
        mocks = install(Mocks(dict(STACKS)))
        deploy(lambda a=active: build_edge(settings("live", role="edge", activeColor=a, **SHADOW)))
        targets[active] = ingress_annotations(mocks)[MIRROR]
    assert targets == {
        "blue": "http://shop-green.shop.svc.cluster.local:80$request_uri",
        "green": "http://shop-blue.shop.svc.cluster.local:80$request_uri",
    }


def test_no_mirror_without_a_shadow(mocks):
    s = settings("live", role="edge", activeColor="blue", ingressHost="shop.example.com")
    deploy(lambda: build_edge(s))
    annotations = ingress_annotations(mocks)
    mirrors = [a for a in annotations if "/mirror" in a]
    assert mirrors == [], f"bluegreen:shadow is 0, yet the Ingress carries {mirrors}"
    assert "live-ingress" in mocks.created


@pytest.mark.parametrize(
    ("values", "key", "shown", "allowed"),
    [
        ({"cache": "true"}, "cache", "true", "set it to false, the only value on kubernetes"),
        (
            {"cache": "true", "cacheWarmPaths": '["/"]'},
            "cacheWarmPaths",
            '["/"]',
            "leave it unset, the only value on kubernetes",
        ),
        ({"rateLimit": "200"}, "rateLimit", "200", "set it to 0, the only value on kubernetes"),
        (
            {"connectionLimit": "500"},
            "connectionLimit",
            "500",
            "set it to 0, the only value on kubernetes",
        ),
        (
            {"shadow": "100", "shadowWrites": "true"},
            "shadow",
            "100",
            "set it to 0, or set bluegreen:ingressHost for ingress-nginx's mirror, which takes "
            "bluegreen:shadow 100 with bluegreen:shadowWrites true",
        ),
        (
            {**SHADOW, "shadow": "25"},
            "shadow",
            "25",
            "set it to 100 or 0, the only values on kubernetes",
        ),
        (
            {**SHADOW, "shadowWrites": "false"},
            "shadowWrites",
            "false",
            "set it to true, the only value with bluegreen:shadow on kubernetes",
        ),
        (
            {**SHADOW, "canaryWeight": "25"},
            "shadow",
            "100",
            "set it to 0 for the canary steps; the mirror needs an idle arm",
        ),
        (
            {"maintenanceQueue": "/orders"},
            "maintenanceQueue",
            '"/orders"',
            'set it to "", the only value on kubernetes',
        ),
        (
            {"maintenanceEnd": "2026-11-24T02:00:00Z"},
            "maintenanceEnd",
            '"2026-11-24T02:00:00Z"',
            'set it to "", the only value on kubernetes',
        ),
    ],
)
def test_what_ingress_nginx_cannot_do_is_refused_before_anything_is_declared(
    mocks, values, key, shown, allowed
):
    with pytest.raises(ConfigError) as err:
        deploy(lambda: build_edge(settings("live", role="edge", activeColor="blue", **values)))
    (problem,) = [p for p in err.value.problems if p.startswith(f"bluegreen:{key} ")]
    assert problem.startswith(f"bluegreen:{key} is {shown}, but "), problem
    assert allowed in problem, problem
    assert problem.endswith("(nothing was changed)"), problem
    assert mocks.created == {}, f"refused config, yet {list(mocks.created)} were declared"


@pytest.mark.parametrize(
    ("key", "annotation"), [("rateLimit", "limit-rps"), ("connectionLimit", "limit-connections")]
)
def test_backpressure_is_refused_as_ingress_nginx_counts_per_client(key, annotation):
    with pytest.raises(ConfigError) as err:
        settings(
            "live", role="edge", activeColor="blue", ingressHost="shop.example.com", **{key: "9"}
        )
    assert (
        f"bluegreen:{key} is 9, but ingress-nginx's {annotation} counts per client address, not "
        "edge-wide, and an Ingress annotation cannot expire after a flip: set it to 0"
        in str(err.value)
    )
