"""Kubernetes: each arm is a Deployment with its own Service; the edge is the live Service.

The traffic switch is the selector of the live Service `<app>`: `{app: <app>, color: <active>}`.
A flip changes that one label and kube-proxy moves new connections at once; the arms' Deployments
and Services are never touched. pulumi-kubernetes only reports the Service updated once it has
ready endpoints, so a flip to an arm with no ready pod does not return success.

A plain Service cannot split traffic, so a canary step (bluegreen:canaryWeight) needs the optional
Ingress (bluegreen:ingressHost, ingress-nginx): a second Ingress with the ingress-nginx canary
annotations sends the smaller share to the other arm's own Service. Maintenance mode is likewise an
Ingress feature (a configuration snippet); both are refused in preflight without an Ingress. So is
shadow traffic, ingress-nginx's mirror of every request to the idle arm's own Service
(bluegreen:shadow 100 with bluegreen:shadowWrites true); the edge cache and the rate limit and
connection cap are refused (`KubernetesEdge.refusals`).

The Ingress's backend is the live colour's own arm Service (`<app>-<colour>`), not the live
Service: ingress-nginx labels its metrics with the Service it proxied to, so the live Service
would put both colours under one name (before and after a flip alike), while the arms' Services
name exactly one colour each. The hold after a flip reads those metrics from the operator's
Prometheus (bluegreen:prometheusUrl, required), per colour by `namespace` and `service`.
Without an Ingress no traffic passes ingress-nginx: the hold then reads the arms' own metrics
(bluegreen/arm_metrics.py) by their `color` label, which that Prometheus must scrape from the pods.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from bluegreen import arm_metrics
from bluegreen.config import COLORS, ArmSettings, ConfigError, EdgeSettings, Maintenance, other
from bluegreen.reader import BANNER, HOST_NAME, Alphabet, Reader
from bluegreen.switch import WRITE_METHODS, generation, maintenance_body
from platforms import metrics_keys
from platforms.base import (
    ArmEndpoint,
    ArmPlatform,
    Arms,
    ArmView,
    EdgeEndpoint,
    EdgePlatform,
    refused,
    write_refusals,
)

_ANNOTATION = "nginx.ingress.kubernetes.io"
_K8S_NAME = Alphabet(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", "a Kubernetes name")
_IMAGE = Alphabet(r"[a-z0-9][a-z0-9._/:@-]{0,254}", "an image reference")
_INGRESS_HOST = Alphabet(HOST_NAME.pattern, "a host name")
# What may appear inside a single-quoted nginx string (the JSON body): no quote to close it, no
# backslash to escape it, no $ to expand a variable, no line break.
_SNIPPET_BODY = re.compile(r"[^'\\$\n\r]{1,1000}")

INGRESS_REQUESTS = "nginx_ingress_controller_requests"
"""ingress-nginx's counter of requests it proxied, labelled (among others) namespace, ingress,
service (the backend Service) and status."""
INGRESS_DURATION = "nginx_ingress_controller_request_duration_seconds"
"""ingress-nginx's histogram of seconds to answer a request, with the same labels."""
INGRESS_QUERIES = {
    "requests": f"sum({INGRESS_REQUESTS}{{$selector}})",
    "errors": f'sum({INGRESS_REQUESTS}{{$selector,status=~"5.."}})',
    "p95": (
        "histogram_quantile(0.95, sum by (le) "
        f"(increase({INGRESS_DURATION}_bucket{{$selector}}[$window])))"
    ),
    "buckets": f"sum by (le) (increase({INGRESS_DURATION}_bucket{{$selector}}[$window]))",
}
"""The hold's PromQL over ingress-nginx's metrics, the defaults with an Ingress."""


def service_selector(namespace: str, service: str) -> str:
    """The label matchers of one arm Service's series in INGRESS_QUERIES."""
    return f'namespace="{namespace}",service="{service}"'


@dataclass(frozen=True)
class Cluster:
    """Where both roles deploy: the kubeconfig context and the namespace."""

    context: str
    namespace: str
    app_port: int

    @classmethod
    def from_config(cls, read: Reader) -> Cluster:
        context = read.required(
            "kubeContext", ": the kubernetes platform needs the kubeconfig context to deploy to"
        )
        namespace = read.matching("namespace", _K8S_NAME)
        return cls(context, namespace, read.integer("appPort", 1, 65535))

    def options(self, name: str, parent: pulumi.Resource) -> pulumi.ResourceOptions:
        """Options for every object: an explicit provider, so a deploy goes to the context the
        stack names, never to whatever context the operator's kubeconfig has selected."""
        provider = k8s.Provider(
            f"{name}-k8s",
            context=self.context,
            namespace=self.namespace,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        return pulumi.ResourceOptions(parent=parent, provider=provider)


def image_for(image: str, version: str) -> str:
    """The arm's image: the version is its tag unless the reference already has a tag or digest."""
    last = image.rsplit("/", 1)[-1]
    return image if ("@" in image or ":" in last) else f"{image}:{version}"


def service_host(app: str, namespace: str) -> str:
    return f"{app}.{namespace}.svc.cluster.local"


ARM_SERVICE_PORT = 80
"""The port of every arm's Service (and the live one); it targets bluegreen:appPort."""


def mirror_target(service: str, namespace: str) -> str:
    """ingress-nginx's mirror-target for shadow traffic: the idle arm's own Service, with the
    request's path and query (`$request_uri`, expanded by nginx per request)."""
    return f"http://{service_host(service, namespace)}:{ARM_SERVICE_PORT}$request_uri"


def split(weights: dict[str, int], active: str) -> tuple[str, str | None, int]:
    """(colour of the live Service, canary colour or None, canary weight).

    A Service sends everything to one colour; during a canary step that is the colour with the
    larger share (the active one on a tie), and the canary Ingress sends the rest to the other.
    """
    major = max(COLORS, key=lambda c: (weights.get(c, 0), c == active))
    minor = next(c for c in COLORS if c != major)
    share = int(weights.get(minor, 0))
    return major, (minor if share > 0 else None), share


def maintenance_snippet(m: Maintenance) -> str:
    """The ingress-nginx configuration snippet of read-only mode, validated value by value.

    The snippet is pasted into the controller's nginx.conf verbatim: it is an injection point, so
    every value is checked here again even though the config module validated it.
    """
    status, retry = int(m.status), int(m.retry_after_s)
    if status not in (423, 503):
        raise ValueError(f"maintenance status must be 423 or 503, got {status}")
    if not 1 <= retry <= 86400:
        raise ValueError(f"maintenance Retry-After must be 1-86400 seconds, got {retry}")
    body = maintenance_body(m)
    if not _SNIPPET_BODY.fullmatch(body):
        raise ValueError(f"refusing to render {body!r} into an ingress-nginx snippet")
    # Inside a double-quoted header value: the banner's alphabet has no `"`, `;` or `$`.
    if not BANNER.fits(m.banner):
        raise ValueError(
            f"refusing to render {m.banner!r} into an ingress-nginx snippet: only letters, "
            "digits, spaces and .,:!?()'/_- allowed"
        )
    banner = f' "X-Bluegreen-Banner: {m.banner}"' if m.banner else ""
    methods = "|".join(WRITE_METHODS)
    # headers-more's more_set_headers (built into ingress-nginx) works inside `if`, where
    # add_header and default_type do not; an `if` block does not inherit the location's headers,
    # so the banner is set in both places.
    lines = [
        "# bluegreen maintenance (read-only) mode: writes are refused before they reach an arm.",
        *([f"more_set_headers{banner};"] if banner else []),
        f"if ($request_method ~ ^({methods})$) {{",
        f'    more_set_headers "Retry-After: {retry}" "Content-Type: application/json"{banner};',
        f"    return {status} '{body}';",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _backend(service: pulumi.Input[str]) -> k8s.networking.v1.IngressBackendArgs:
    return k8s.networking.v1.IngressBackendArgs(
        service=k8s.networking.v1.IngressServiceBackendArgs(
            name=service, port=k8s.networking.v1.ServiceBackendPortArgs(number=80)
        )
    )


def _ingress_spec(
    host: str, ingress_class: str, service: pulumi.Input[str]
) -> k8s.networking.v1.IngressSpecArgs:
    return k8s.networking.v1.IngressSpecArgs(
        ingress_class_name=ingress_class,
        rules=[
            k8s.networking.v1.IngressRuleArgs(
                host=host,
                http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                    paths=[
                        k8s.networking.v1.HTTPIngressPathArgs(
                            path="/", path_type="Prefix", backend=_backend(service)
                        )
                    ]
                ),
            )
        ],
    )


def _service_name(arm: ArmView) -> pulumi.Output[str]:
    def pick(outputs: dict) -> str:
        if not outputs.get("serviceName"):
            raise pulumi.RunError(
                f"The {arm.color} arm has no serviceName output: it was not deployed with "
                f"bluegreen:platform kubernetes. Deploy it with `pulumi up -s {arm.color}`, or "
                f"check bluegreen:{arm.color}Stack."
            )
        return outputs["serviceName"]

    return arm.outputs.apply(pick)


@dataclass(frozen=True)
class KubernetesArm(ArmPlatform):
    cluster: Cluster
    image: str
    """The container image; the version is its tag unless the image already has one."""

    @classmethod
    def from_config(cls, read: Reader) -> KubernetesArm:
        image = read.required(
            "image", ": the kubernetes platform needs the container image of the app"
        )
        if image:
            read.matching("image", _IMAGE, image)
        return cls(Cluster.from_config(read), image)

    def arm(self, name: str, parent: pulumi.Resource, settings: ArmSettings) -> ArmEndpoint:
        cfg = self.cluster
        opts = cfg.options(name, parent)
        app, color, version = settings.app_name, settings.color, settings.version
        full_name = f"{app}-{color}"
        # The selector leaves out the version: a Deployment's selector cannot change, and the
        # next version of this arm is an update of the same Deployment.
        selector = {"app": app, "color": color}
        labels = {**selector, "version": version}
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=full_name, namespace=cfg.namespace, labels=labels
            ),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=settings.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                # Never fewer ready pods than asked for while a new version rolls out.
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                        max_unavailable=0, max_surge=1
                    ),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="app",
                                image=image_for(self.image, version),
                                args=[
                                    f"--color={color}",
                                    f"--version={version}",
                                    "--host=0.0.0.0",
                                    f"--port={cfg.app_port}",
                                    f"--health-path={settings.health_path}",
                                ],
                                ports=[
                                    k8s.core.v1.ContainerPortArgs(
                                        name="http", container_port=cfg.app_port
                                    )
                                ],
                                # A pod joins its Service (and so the live one) only once it
                                # answers the readiness path; the Deployment's rollout waits
                                # for it, so `pulumi up -s <colour>` returns a ready arm.
                                readiness_probe=k8s.core.v1.ProbeArgs(
                                    http_get=k8s.core.v1.HTTPGetActionArgs(
                                        path=settings.health_path, port=cfg.app_port
                                    ),
                                    period_seconds=5,
                                    failure_threshold=2,
                                ),
                            )
                        ]
                    ),
                ),
            ),
            opts=opts,
        )
        # pulumi-kubernetes waits for a Service to have ready endpoints; an arm scaled to zero
        # never gets one, and its deploy would hang for ten minutes and then fail.
        no_pods = {"pulumi.com/skipAwait": "true"} if settings.replicas == 0 else None
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=full_name, namespace=cfg.namespace, labels=selector, annotations=no_pods
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="http", port=ARM_SERVICE_PORT, target_port=cfg.app_port
                    )
                ],
            ),
            opts=opts,
        )
        host = service.metadata.apply(lambda meta: service_host(meta.name, cfg.namespace))
        return ArmEndpoint(
            endpoint=host.apply(lambda h: f"http://{h}"),
            nodes=host.apply(lambda h: [f"{h}:{ARM_SERVICE_PORT}"]),
            exports={"serviceName": service.metadata.apply(lambda meta: meta.name)},
        )


@dataclass(frozen=True)
class KubernetesEdge(EdgePlatform):
    cluster: Cluster
    ingress_host: str | None
    """Host of the optional Ingress in front of the live Service (canary steps, maintenance)."""
    ingress_class: str
    prometheus_url: str
    """The operator's Prometheus, which the hold after a flip queries."""
    queries: Mapping[str, str]
    """The hold's PromQL: over ingress-nginx's metrics with an Ingress, else the arms' own."""

    @classmethod
    def from_config(cls, read: Reader) -> KubernetesEdge:
        host = read.optional("ingressHost")
        if host is not None:
            read.matching("ingressHost", _INGRESS_HOST, host)
        ingress_class = read.matching("ingressClass", _K8S_NAME)
        metrics_keys.source(read, "kubernetes", ("prometheus",))
        url = metrics_keys.prometheus_url(
            read,
            ": the kubernetes platform runs no Prometheus of its own; the hold after a flip "
            "queries yours, e.g. http://prometheus.monitoring.svc:9090",
        )
        defaults = INGRESS_QUERIES if host is not None else arm_metrics.APP_QUERIES
        return cls(
            Cluster.from_config(read),
            host,
            ingress_class,
            prometheus_url=url or "",
            queries=metrics_keys.queries(read, defaults),
        )

    def refusals(self, settings: EdgeSettings) -> list[str]:
        """What a Service and ingress-nginx annotations cannot do: an edge cache, an edge-wide
        rate limit or connection cap, and shadow traffic other than ingress-nginx's mirror of
        every request through the Ingress. Only values other than the defaults are refused."""
        only = "the only value on kubernetes"
        found = []
        cache = settings.cache
        if cache.enabled:
            found.append(
                refused(
                    "cache",
                    True,
                    "ingress-nginx has no per-Ingress cache without configuration snippets, "
                    "which it disables by default",
                    f"set it to false, {only}",
                )
            )
            if cache.warm_paths:  # without the cache, config.py already refuses them
                found.append(
                    refused(
                        "cacheWarmPaths",
                        cache.warm_paths,
                        "ingress-nginx has no per-Ingress cache to warm",
                        f"leave it unset, {only}",
                    )
                )
        found.extend(self._shadow_refusals(settings))
        found.extend(write_refusals(settings, "ingress-nginx without configuration snippets", only))
        b = settings.backpressure
        for key, value, annotation in (
            ("rateLimit", b.rate, "limit-rps"),
            ("connectionLimit", b.connections, "limit-connections"),
        ):
            if value > 0:
                found.append(
                    refused(
                        key,
                        value,
                        f"ingress-nginx's {annotation} counts per client address, not edge-wide, "
                        "and an Ingress annotation cannot expire after a flip",
                        f"set it to 0, {only}",
                    )
                )
        return found

    def _shadow_refusals(self, settings: EdgeSettings) -> list[str]:
        """Shadow traffic is ingress-nginx's mirror-target on the Ingress, which copies every
        request, writes included: bluegreen:shadow 100 with bluegreen:shadowWrites true, with an
        Ingress, outside canary steps."""
        shadow = settings.shadow
        if shadow.percent == 0:
            return []
        if self.ingress_host is None:
            return [
                refused(
                    "shadow",
                    shadow.percent,
                    "without an Ingress nothing on kubernetes copies requests (a Service only "
                    "selects pods)",
                    "set it to 0, or set bluegreen:ingressHost for ingress-nginx's mirror, which "
                    "takes bluegreen:shadow 100 with bluegreen:shadowWrites true",
                )
            ]
        found = []
        if shadow.percent != 100:
            found.append(
                refused(
                    "shadow",
                    shadow.percent,
                    "ingress-nginx's mirror (nginx.ingress.kubernetes.io/mirror-target) copies "
                    "every request, with no share",
                    "set it to 100 or 0, the only values on kubernetes",
                )
            )
        if not shadow.writes:
            found.append(
                refused(
                    "shadowWrites",
                    False,
                    "ingress-nginx's mirror copies every method, writes included, with no filter",
                    "set it to true, the only value with bluegreen:shadow on kubernetes, if the "
                    "idle arm may take mirrored writes, or set bluegreen:shadow to 0",
                )
            )
        if settings.canary_weight is not None:
            found.append(
                refused(
                    "shadow",
                    shadow.percent,
                    f"bluegreen:canaryWeight is {settings.canary_weight}, and in a canary step "
                    "both colours serve users, so ingress-nginx would mirror every request, the "
                    "canary's too, to a colour that users already reach",
                    "set it to 0 for the canary steps; the mirror needs an idle arm",
                )
            )
        return found

    def preflight(self, settings: EdgeSettings) -> None:
        problems = []
        if self.ingress_host is None:
            if settings.canary_weight is not None:
                problems.append(
                    f"bluegreen:canaryWeight {settings.canary_weight} cannot be served on "
                    "kubernetes without an Ingress: the live Service's selector sends all traffic "
                    "to one colour. A canary split needs an Ingress with the ingress-nginx canary "
                    "annotations: set bluegreen:ingressHost, or set bluegreen:canaryWeight to 0 "
                    "and move all traffic with bluegreen:activeColor."
                )
            if settings.maintenance.enabled:
                problems.append(
                    "bluegreen:maintenance true cannot be served on kubernetes without an Ingress: "
                    "a Service cannot refuse writes. Set bluegreen:ingressHost (ingress-nginx) or "
                    "set bluegreen:maintenance to false."
                )
        else:
            try:
                maintenance_snippet(settings.maintenance)
            except ValueError as err:
                problems.append(f"bluegreen:maintenanceBanner: {err}")
        if problems:
            raise ConfigError(problems)

    def edge(
        self, name: str, parent: pulumi.Resource, settings: EdgeSettings, arms: Arms
    ) -> EdgeEndpoint:
        refusals = self.refusals(settings)
        if refusals:  # load() reports them first; a mirror must never copy writes to a live arm
            raise ConfigError(refusals)
        cfg = self.cluster
        weights = settings.weights
        live_color, canary, canary_weight = split(weights, settings.active_color)
        host = self.ingress_host
        if canary and not host:
            raise ConfigError(
                [
                    f"weights {weights} need an Ingress on kubernetes: set bluegreen:ingressHost "
                    "for the ingress-nginx canary, or flip all traffic with bluegreen:activeColor"
                ]
            )
        opts = cfg.options(name, parent)
        app = settings.app_name
        # The switch: the reference guide's selector flip. Only the colour label changes.
        selector = {"app": app, "color": live_color}
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=app, namespace=cfg.namespace, labels={"app": app}
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="http", port=ARM_SERVICE_PORT, target_port=cfg.app_port
                    )
                ],
            ),
            opts=opts,
        )
        served_by: list[pulumi.Output] = [service.metadata.apply(lambda meta: meta.name)]
        m = settings.maintenance
        shadow = settings.shadow.percent > 0  # 100, with writes and an Ingress (refusals)
        if host:
            annotations: dict[str, pulumi.Input[str]] = {}
            if m.enabled:
                # Needs the controller to allow snippets (allow-snippet-annotations: "true",
                # annotations-risk-level: Critical); ingress-nginx refuses the Ingress otherwise,
                # and the update fails instead of silently taking writes.
                annotations[f"{_ANNOTATION}/configuration-snippet"] = maintenance_snippet(m)
            if settings.sticky:
                # Cookie affinity; canaries honour it (affinity-canary-behavior: sticky), so a
                # client stays on the arm it first reached during a canary step.
                annotations[f"{_ANNOTATION}/affinity"] = "cookie"
                annotations[f"{_ANNOTATION}/affinity-canary-behavior"] = "sticky"
                annotations[f"{_ANNOTATION}/session-cookie-name"] = "bluegreen_client"
                annotations[f"{_ANNOTATION}/session-cookie-max-age"] = "86400"
            if shadow:
                # Shadow traffic: ingress-nginx mirrors every request, body included, to the
                # idle colour's own Service and discards the answers; the mirrored request keeps
                # the users' Host. A flip moves it with the backend. The copy is tied to the
                # original request: a slow idle arm slows users' requests. Both annotations are
                # "High" risk in ingress-nginx, which its default annotations-risk-level allows.
                idle = _service_name(arms[other(settings.active_color)])
                annotations[f"{_ANNOTATION}/mirror-target"] = idle.apply(
                    lambda service: mirror_target(service, cfg.namespace)
                )
                annotations[f"{_ANNOTATION}/mirror-host"] = host
            ingress = k8s.networking.v1.Ingress(
                f"{name}-ingress",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=app, namespace=cfg.namespace, annotations=annotations
                ),
                # The live colour's own Service, so that ingress-nginx's metrics name the
                # colour that served (the module docstring says why).
                spec=_ingress_spec(host, self.ingress_class, _service_name(arms[live_color])),
                opts=opts,
            )
            served_by.append(ingress.metadata.apply(lambda meta: meta.name))
            if canary:
                canary_ingress = k8s.networking.v1.Ingress(
                    f"{name}-canary",
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        name=f"{app}-canary",
                        namespace=cfg.namespace,
                        annotations={
                            f"{_ANNOTATION}/canary": "true",
                            f"{_ANNOTATION}/canary-weight": str(canary_weight),
                        },
                    ),
                    spec=_ingress_spec(host, self.ingress_class, _service_name(arms[canary])),
                    opts=opts,
                )
                served_by.append(canary_ingress.metadata.apply(lambda meta: meta.name))
            url = f"http://{host}/"
        else:
            url = f"http://{service_host(app, cfg.namespace)}/"
        fingerprint = generation(
            json.dumps(
                {
                    "selector": selector,
                    "weights": weights,
                    "canary": [canary, canary_weight],
                    "maintenance": [m.enabled, m.status, m.retry_after_s, m.banner],
                    "sticky": settings.sticky,
                    # Only when on, so that an edge without a shadow keeps its fingerprint.
                    **({"shadow": settings.shadow.percent} if shadow else {}),
                },
                sort_keys=True,
            )
        )
        ready = pulumi.Output.all(*served_by)
        return EdgeEndpoint(
            url=pulumi.Output.from_input(url),
            generation=ready.apply(lambda _: fingerprint),
            exports={"serviceName": service.metadata.apply(lambda meta: meta.name)},
            metrics=self.metrics(arms),
        )

    def metrics(self, arms: Arms) -> pulumi.Output[dict]:
        """The hold's source: the operator's Prometheus, a selector per colour that matches only
        that colour's traffic (its arm Service through the Ingress, else its pods' own label)."""
        colors = list(arms)
        if self.ingress_host is None:
            selectors = pulumi.Output.from_input({c: arm_metrics.color_selector(c) for c in colors})
        else:
            namespace = self.cluster.namespace
            selectors = pulumi.Output.all(*[_service_name(arms[c]) for c in colors]).apply(
                lambda names: {
                    c: service_selector(namespace, n) for c, n in zip(colors, names, strict=True)
                }
            )
        return selectors.apply(
            lambda s: metrics_keys.prometheus_output(self.prometheus_url, self.queries, s)
        )


ARM = KubernetesArm
EDGE = KubernetesEdge
