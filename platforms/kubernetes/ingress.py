"""What the optional Ingress (ingress-nginx) does on the live edge: the canary split (a second
Ingress with its canary annotations), maintenance (a configuration snippet), shadow traffic (its
mirror to the idle arm's own Service), and the metrics the hold reads of it."""

from __future__ import annotations

import re

import pulumi
import pulumi_kubernetes as k8s

from bluegreen.config import COLORS, EdgeSettings, Maintenance
from bluegreen.reader import BANNER
from bluegreen.switch import WRITE_METHODS, maintenance_body
from platforms.kubernetes.cluster import ARM_SERVICE_PORT, service_host

ANNOTATION = "nginx.ingress.kubernetes.io"
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


def ingress_annotations(
    settings: EdgeSettings, host: str, namespace: str, idle: pulumi.Output[str] | None
) -> dict[str, pulumi.Input[str]]:
    """The main Ingress's annotations: maintenance, cookie affinity, and the mirror to `idle`,
    the idle colour's own Service (bluegreen:shadow; None without it)."""
    annotations: dict[str, pulumi.Input[str]] = {}
    m = settings.maintenance
    if m.enabled:
        # Needs the controller to allow snippets (allow-snippet-annotations: "true",
        # annotations-risk-level: Critical); ingress-nginx refuses the Ingress otherwise,
        # and the update fails instead of silently taking writes.
        annotations[f"{ANNOTATION}/configuration-snippet"] = maintenance_snippet(m)
    if settings.sticky:
        # Cookie affinity; canaries honour it (affinity-canary-behavior: sticky), so a
        # client stays on the arm it first reached during a canary step.
        annotations[f"{ANNOTATION}/affinity"] = "cookie"
        annotations[f"{ANNOTATION}/affinity-canary-behavior"] = "sticky"
        annotations[f"{ANNOTATION}/session-cookie-name"] = "bluegreen_client"
        annotations[f"{ANNOTATION}/session-cookie-max-age"] = "86400"
    if idle is not None:
        # Shadow traffic: ingress-nginx mirrors every request, body included, to the
        # idle colour's own Service and discards the answers; the mirrored request keeps
        # the users' Host. A flip moves it with the backend. The copy is tied to the
        # original request: a slow idle arm slows users' requests. Both annotations are
        # "High" risk in ingress-nginx, which its default annotations-risk-level allows.
        annotations[f"{ANNOTATION}/mirror-target"] = idle.apply(
            lambda service: mirror_target(service, namespace)
        )
        annotations[f"{ANNOTATION}/mirror-host"] = host
    return annotations


def _backend(service: pulumi.Input[str]) -> k8s.networking.v1.IngressBackendArgs:
    return k8s.networking.v1.IngressBackendArgs(
        service=k8s.networking.v1.IngressServiceBackendArgs(
            name=service, port=k8s.networking.v1.ServiceBackendPortArgs(number=80)
        )
    )


def ingress_spec(
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
