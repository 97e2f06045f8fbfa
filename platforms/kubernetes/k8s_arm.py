"""The arm on Kubernetes: a Deployment of the app and its own Service (its direct endpoint).

With bluegreen:schemaRevision the data stack's DSN goes to the pods as a file, never an
environment variable (which `kubectl describe`, crash reports and child processes all see): a
Secret of its own, mounted read-only at /etc/bluegreen (`--dsn-file=/etc/bluegreen/dsn`, mode
0400). The Secret is immutable, named by Pulumi and replaced when the DSN changes, so a new DSN
is a new Secret, and the Deployment rolls its pods onto it (the app reads the file once) before
the old one goes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from bluegreen.config import ArmSettings
from bluegreen.reader import Alphabet, Reader
from platforms.base import ArmEndpoint, ArmPlatform, DataLink
from platforms.kubernetes.cluster import ARM_SERVICE_PORT, Cluster, cluster_service, service_host

_IMAGE = Alphabet(r"[a-z0-9][a-z0-9._/:@-]{0,254}", "an image reference")


def image_for(image: str, version: str) -> str:
    """The arm's image: the version is its tag unless the reference already has a tag or digest."""
    last = image.rsplit("/", 1)[-1]
    return image if ("@" in image or ":" in last) else f"{image}:{version}"


DSN_DIR = "/etc/bluegreen"


def dsn_volume(
    name: str, cfg: Cluster, labels: dict[str, str], opts: pulumi.ResourceOptions, data: DataLink
) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """The DSN's Secret; the app's further arguments, and the pod's and the container's further
    fields that mount it."""
    secret = k8s.core.v1.Secret(
        f"{name}-dsn",
        metadata=k8s.meta.v1.ObjectMetaArgs(namespace=cfg.namespace, labels=labels),
        type="Opaque",
        immutable=True,
        string_data={"dsn": data.dsn},
        # pulumi-kubernetes replaces a Secret whose data changes, unless its provider has
        # enableSecretMutable: replaced here either way.
        opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(replace_on_changes=["stringData"])
        ),
    )
    volume = k8s.core.v1.VolumeArgs(
        name="dsn",
        secret=k8s.core.v1.SecretVolumeSourceArgs(
            secret_name=secret.metadata.apply(lambda meta: meta.name),
            default_mode=0o400,
            items=[k8s.core.v1.KeyToPathArgs(key="dsn", path="dsn")],
        ),
    )
    mount = k8s.core.v1.VolumeMountArgs(name="dsn", mount_path=DSN_DIR, read_only=True)
    args = [f"--dsn-file={DSN_DIR}/dsn", f"--items-shape={data.items_shape}"]
    return args, {"volumes": [volume]}, {"volume_mounts": [mount]}


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

    def arm(
        self,
        name: str,
        parent: pulumi.Resource,
        settings: ArmSettings,
        data: DataLink | None = None,
    ) -> ArmEndpoint:
        cfg = self.cluster
        opts = cfg.options(name, parent)
        app, color, version = settings.app_name, settings.color, settings.version
        full_name = f"{app}-{color}"
        # The selector leaves out the version: a Deployment's selector cannot change, and the
        # next version of this arm is an update of the same Deployment.
        selector = {"app": app, "color": color}
        labels = {**selector, "version": version}
        extra_args: list[str] = []
        pod: dict[str, Any] = {}
        container: dict[str, Any] = {}
        if data is not None:  # else the pods are what they always were
            extra_args, pod, container = dsn_volume(name, cfg, selector, opts, data)
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
                                    *extra_args,
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
                                **container,
                            )
                        ],
                        **pod,
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
