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

The arm is k8s_arm.py's, the live edge k8s_edge.py's, the Ingress's annotations and metrics
ingress.py's; cluster.py has the context, the namespace and the Services' names both use. With
bluegreen:edges the edge is declared again in each site's context (k8s_sites.py), in front of the
arms running there: every such context runs both arms, which this stack does not deploy.

The data stack declares nothing here: its database is one you give by its DSN (k8s_data.py), and
an arm with bluegreen:schemaRevision gets that DSN as a mounted Secret (k8s_arm.py).
"""

from __future__ import annotations

from platforms.kubernetes.k8s_arm import KubernetesArm
from platforms.kubernetes.k8s_data import KubernetesData
from platforms.kubernetes.k8s_edge import KubernetesEdge

ARM = KubernetesArm
EDGE = KubernetesEdge
DATA = KubernetesData
