"""Where both roles deploy on Kubernetes: the context and namespace (every object through an
explicit provider), and the Services' names and port, by which the edge reaches the arms."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from bluegreen.reader import Alphabet, Reader
from platforms.base import ArmView

K8S_NAME = Alphabet(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", "a Kubernetes name")
KUBE_CONTEXT = Alphabet(
    r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,252}",
    "a kubeconfig context name: letters, digits and ._:@/-, starting with a letter or digit "
    "(kind-dev, gke_project_zone_name, arn:aws:eks:eu-west-1:123456789012:cluster/prod, "
    "kubernetes-admin@kubernetes)",
)
"""bluegreen:kubeContext's, and each site's place in bluegreen:edges. Not empty: an empty context
would be whatever context the kubeconfig has selected, which the explicit provider rules out."""


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
        if read.optional("kubeContext") is not None:
            read.matching("kubeContext", KUBE_CONTEXT, context)
        namespace = read.matching("namespace", K8S_NAME)
        return cls(context, namespace, read.integer("appPort", 1, 65535))

    def options(
        self, name: str, parent: pulumi.Resource, context: str | None = None, site: str = ""
    ) -> pulumi.ResourceOptions:
        """Options for every object: an explicit provider, so a deploy goes to the context the
        stack names, never to whatever context the operator's kubeconfig has selected. An edge
        site in another context (bluegreen:edges) gets its own, `<name>-k8s-<site>`."""
        provider = k8s.Provider(
            f"{name}-k8s-{site}" if site else f"{name}-k8s",
            context=context or self.context,
            namespace=self.namespace,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        return pulumi.ResourceOptions(parent=parent, provider=provider)


def service_host(app: str, namespace: str) -> str:
    return f"{app}.{namespace}.svc.cluster.local"


ARM_SERVICE_PORT = 80
"""The port of every arm's Service (and the live one); it targets bluegreen:appPort."""


def cluster_service(
    resource: str,
    name: str,
    cfg: Cluster,
    labels: dict[str, str],
    selector: pulumi.Input[dict[str, str]],
    opts: pulumi.ResourceOptions,
    annotations: dict[str, str] | None = None,
) -> k8s.core.v1.Service:
    """A ClusterIP Service on `ARM_SERVICE_PORT` targeting bluegreen:appPort: each arm's, and
    the live one whose selector is the switch."""
    return k8s.core.v1.Service(
        resource,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=name, namespace=cfg.namespace, labels=labels, annotations=annotations
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


def service_name(arm: ArmView) -> pulumi.Output[str]:
    def pick(outputs: dict) -> str:
        if not outputs.get("serviceName"):
            raise pulumi.RunError(
                f"The {arm.color} arm has no serviceName output: it was not deployed with "
                f"bluegreen:platform kubernetes. Deploy it with `pulumi up -s {arm.color}`, or "
                f"check bluegreen:{arm.color}Stack."
            )
        return outputs["serviceName"]

    return arm.outputs.apply(pick)
