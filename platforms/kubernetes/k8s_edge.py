"""The live edge on Kubernetes: the live Service, whose selector is the switch, and the optional
Ingress in front of it (ingress.py); what neither can do is refused before anything is declared
(`KubernetesEdge.refusals`, `preflight`). With bluegreen:edges, one copy of them per site, each in
its own kubeconfig context, in front of the arms running in that context (k8s_sites.py says why
every context must run both arms)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from bluegreen import arm_metrics
from bluegreen.config import ConfigError, EdgeSettings, other
from bluegreen.reader import HOST_NAME, Alphabet, Reader
from bluegreen.switch import generation
from platforms import metrics_keys
from platforms.base import Arms, EdgeEndpoint, EdgePlatform, refused, write_refusals
from platforms.held_sites import site_traffic
from platforms.kubernetes.cluster import (
    K8S_NAME,
    Cluster,
    cluster_service,
    service_host,
    service_name,
)
from platforms.kubernetes.ingress import (
    ANNOTATION,
    INGRESS_QUERIES,
    ingress_annotations,
    ingress_spec,
    maintenance_snippet,
    service_selector,
    split,
)
from platforms.kubernetes.k8s_sites import Site, sites
from platforms.kubernetes.k8s_sites import refusals as site_refusals

_INGRESS_HOST = Alphabet(HOST_NAME.pattern, "a host name")


@dataclass(frozen=True)
class _Served:
    """One site's copy of the edge, as the stack exports it."""

    url: str
    service_name: pulumi.Output[str]
    generation: pulumi.Output[str]
    """Its fingerprint, once its Service and Ingresses are applied."""


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
        ingress_class = read.matching("ingressClass", K8S_NAME)
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
        every request through the Ingress. Only values other than the defaults are refused. And
        sites of bluegreen:edges whose contexts cannot each hold a copy of the edge."""
        only = "the only value on kubernetes"
        found = site_refusals(self.cluster, settings)
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
        places = sites(self.cluster, settings)
        traffic = site_traffic(settings, [p.name for p in places], os.environ)
        for active, weights in traffic.values():  # before any site's objects are declared
            if split(weights, active)[1] and not self.ingress_host:
                raise ConfigError(
                    [
                        f"weights {weights} need an Ingress on kubernetes: set "
                        "bluegreen:ingressHost for the ingress-nginx canary, or flip all traffic "
                        "with bluegreen:activeColor"
                    ]
                )
        served = [
            self.serve(name, parent, settings, arms, site, *traffic[site.name]) for site in places
        ]
        exports: dict[str, pulumi.Output] = {"serviceName": served[0].service_name}
        if settings.sites.several:
            # What each site serves once its objects are applied: during a flip in waves the
            # sites of the waves not moved yet still serve what they served.
            exports["edges"] = {
                site.name: sv.generation.apply(
                    lambda _, site=site, url=sv.url: {
                        "url": url,
                        "context": site.context,
                        "activeColor": traffic[site.name][0],
                        "weights": traffic[site.name][1],
                    }
                )
                for site, sv in zip(places, served, strict=True)
            }
        return EdgeEndpoint(
            url=pulumi.Output.from_input(served[0].url),
            generation=served[0].generation
            if len(served) == 1
            else pulumi.Output.all(*[sv.generation for sv in served]).apply(",".join),
            exports=exports,
            metrics=self.metrics(arms),
        )

    def serve(
        self,
        name: str,
        parent: pulumi.Resource,
        settings: EdgeSettings,
        arms: Arms,
        site: Site,
        active: str,
        weights: dict[str, int],
    ) -> _Served:
        """One site's copy of the edge, in its context: the same objects from the same settings,
        but for the colour and weights a flip in waves has not moved there yet."""
        cfg = self.cluster
        live_color, canary, canary_weight = split(weights, active)
        host = self.ingress_host
        opts = cfg.options(name, parent, site.context, site.provider)
        app = settings.app_name
        # The switch: the reference guide's selector flip. Only the colour label changes.
        selector = {"app": app, "color": live_color}
        service = cluster_service(
            f"{name}-service{site.suffix}", app, cfg, {"app": app}, selector, opts
        )
        served_by: list[pulumi.Output] = [service.metadata.apply(lambda meta: meta.name)]
        m = settings.maintenance
        shadow = settings.shadow.percent > 0  # 100, with writes and an Ingress (refusals)
        if host:
            idle = service_name(arms[other(active)]) if shadow else None
            ingress = k8s.networking.v1.Ingress(
                f"{name}-ingress{site.suffix}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=app,
                    namespace=cfg.namespace,
                    annotations=ingress_annotations(settings, host, cfg.namespace, idle),
                ),
                # The live colour's own Service, so that ingress-nginx's metrics name the
                # colour that served (the module docstring says why).
                spec=ingress_spec(host, self.ingress_class, service_name(arms[live_color])),
                opts=opts,
            )
            served_by.append(ingress.metadata.apply(lambda meta: meta.name))
            if canary:
                canary_ingress = k8s.networking.v1.Ingress(
                    f"{name}-canary{site.suffix}",
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        name=f"{app}-canary",
                        namespace=cfg.namespace,
                        annotations={
                            f"{ANNOTATION}/canary": "true",
                            f"{ANNOTATION}/canary-weight": str(canary_weight),
                        },
                    ),
                    spec=ingress_spec(host, self.ingress_class, service_name(arms[canary])),
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
        return _Served(
            url,
            service.metadata.apply(lambda meta: meta.name),
            pulumi.Output.all(*served_by).apply(lambda _: fingerprint),
        )

    def metrics(self, arms: Arms) -> pulumi.Output[dict]:
        """The hold's source: the operator's Prometheus, a selector per colour that matches only
        that colour's traffic (its arm Service through the Ingress, else its pods' own label)."""
        colors = list(arms)
        if self.ingress_host is None:
            selectors = pulumi.Output.from_input({c: arm_metrics.color_selector(c) for c in colors})
        else:
            namespace = self.cluster.namespace
            selectors = pulumi.Output.all(*[service_name(arms[c]) for c in colors]).apply(
                lambda names: {
                    c: service_selector(namespace, n) for c, n in zip(colors, names, strict=True)
                }
            )
        return selectors.apply(
            lambda s: metrics_keys.prometheus_output(self.prometheus_url, self.queries, s)
        )
