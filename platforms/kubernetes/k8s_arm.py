"""The arm on Kubernetes: a Deployment of the app and its own Service (its direct endpoint)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from bluegreen.config import ArmSettings
from bluegreen.reader import Alphabet, Reader
from platforms.base import ArmEndpoint, ArmPlatform
from platforms.kubernetes.cluster import ARM_SERVICE_PORT, Cluster, cluster_service, service_host

_IMAGE = Alphabet(r"[a-z0-9][a-z0-9._/:@-]{0,254}", "an image reference")


def image_for(image: str, version: str) -> str:
    """The arm's image: the version is its tag unless the reference already has a tag or digest."""
    last = image.rsplit("/", 1)[-1]
    return image if ("@" in image or ":" in last) else f"{image}:{version}"


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
        service = cluster_service(
            f"{name}-service", full_name, cfg, selector, selector, opts, annotations=no_pods
        )
        host = service.metadata.apply(lambda meta: service_host(meta.name, cfg.namespace))
        return ArmEndpoint(
            endpoint=host.apply(lambda h: f"http://{h}"),
            nodes=host.apply(lambda h: [f"{h}:{ARM_SERVICE_PORT}"]),
            exports={"serviceName": service.metadata.apply(lambda meta: meta.name)},
        )
