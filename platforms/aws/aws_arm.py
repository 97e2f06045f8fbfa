"""The arm on AWS: an Auto Scaling group of instances running the app, behind a target group of
its own, and a small ALB of its own that reaches it alone (the direct endpoint the policy pack
smoke-tests before any traffic moves). With bluegreen:armRegions the instances and a target group
run in more regions too, for the edges there (arm_regions.py). With bluegreen:schemaRevision the
instances read the data stack's DSN at boot from SSM and may reach its database
(aws_arm_data.py)."""

from __future__ import annotations

import base64
import re
import shlex
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from bluegreen.config import ArmSettings
from bluegreen.reader import Alphabet, Reader
from platforms.aws import arm_regions, aws_arm_data
from platforms.aws.arm_regions import ArmRegion, Placed
from platforms.aws.aws_arm_data import DataAccess, DsnFetch
from platforms.aws.aws_places import stack_region
from platforms.aws.vpc import Network, aws_id, load_balancer, security_group, tags_of
from platforms.base import ArmEndpoint, ArmPlatform, DataLink, refused

# Where the AMI carries the reference service (app/server.py) or anything taking the same flags.
APP_PATH = "/opt/bluegreen/server.py"
_SAFE = re.compile(r"^[A-Za-z0-9._/=:+-]+$")
_INSTANCE_TYPE = Alphabet(r"[a-z0-9]+\.[a-z0-9]+", "an instance type such as t3.small")


def _safe(value: str) -> str:
    """Refuse a value that could end a shell word or a unit-file line (config validated it too)."""
    if not _SAFE.match(value):
        raise ValueError(f"refusing to render {value!r} into instance user data")
    return value


def user_data(settings: ArmSettings, app_port: int, dsn: DsnFetch | None = None) -> str:
    """The boot script of every instance of this arm: a systemd unit running the app; with `dsn`,
    reading the data stack's DSN first (aws_arm_data.py), which the unit hands to the app."""
    argv = [
        "/usr/bin/python3",
        APP_PATH,
        f"--color={_safe(settings.color)}",
        f"--version={_safe(settings.version)}",
        "--host=0.0.0.0",
        f"--port={int(app_port)}",
        f"--health-path={_safe(settings.health_path)}",
    ]
    fetch = credential = ""
    if dsn is not None:
        argv += ["--dsn-file=%d/dsn", f"--items-shape={_safe(dsn.items_shape)}"]
        fetch = aws_arm_data.fetch_script(dsn, _safe)
        credential = f"LoadCredential=dsn:{aws_arm_data.DSN_FILE}\n"
    exec_start = " ".join(shlex.quote(a) for a in argv)
    return f"""#!/bin/sh
# bluegreen {settings.app_name} {settings.color} {settings.version}
set -eu
{fetch}cat >/etc/systemd/system/bluegreen-app.service <<'UNIT'
[Unit]
Description=bluegreen {_safe(settings.app_name)} {settings.color} {settings.version}
After=network-online.target
Wants=network-online.target

[Service]
ExecStart={exec_start}
Restart=always
RestartSec=1
DynamicUser=yes
{credential}
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now bluegreen-app.service
"""


def _base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _compute(
    name: str,
    parent: pulumi.Resource,
    cfg: AwsArm,
    s: ArmSettings,
    target_group: aws.lb.TargetGroup,
    at: Placed,
    access: DataAccess | None = None,
) -> aws.autoscaling.Group:
    """Instances of this arm registered in `target_group`, in `at`'s region.

    Kept behind this one function so the arm's compute can be swapped (ECS, a fixed set of
    instances) without touching the target group, the direct ALB or the edge.
    """
    # Both ALBs (this arm's own and the live one, in another stack) reach the instances from
    # inside the VPC; nothing outside the VPC can reach the app port directly.
    invoke = pulumi.InvokeOutputOptions(provider=at.provider) if at.provider else None
    vpc = aws.ec2.get_vpc_output(id=at.network.vpc_id, opts=invoke)
    sg = security_group(
        f"{name}-instances{at.suffix}",
        parent,
        at.network.vpc_id,
        f"bluegreen {s.app_name} {s.color}: app port from the VPC",
        [
            aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp",
                from_port=cfg.app_port,
                to_port=cfg.app_port,
                cidr_blocks=[vpc.cidr_block],
            )
        ],
        at.provider,
    )
    groups: list = [sg.id]
    script: pulumi.Input[str] = _base64(user_data(s, cfg.app_port))
    with_data: dict = {}
    if access is not None:  # the data stack's (aws_arm_data.py); else as ever
        groups.append(access.clients_group)
        script = access.fetch.apply(lambda fetch: _base64(user_data(s, cfg.app_port, fetch)))
        with_data["iam_instance_profile"] = aws.ec2.LaunchTemplateIamInstanceProfileArgs(
            arn=access.profile_arn
        )
    template = aws.ec2.LaunchTemplate(
        f"{name}-launch{at.suffix}",
        image_id=at.ami,
        instance_type=cfg.instance_type,
        vpc_security_group_ids=groups,
        user_data=script,
        **with_data,
        # IMDSv2 only: a request forged through the app cannot read instance credentials.
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_tokens="required", http_endpoint="enabled"
        ),
        tags=tags_of(s, s.color, s.version),
        opts=pulumi.ResourceOptions(
            parent=parent, provider=at.provider, depends_on=access.ready if access else None
        ),
    )
    replicas = s.replicas
    group = aws.autoscaling.Group(
        f"{name}-group{at.suffix}",
        desired_capacity=replicas,
        min_size=replicas,
        # Room for a rolling instance refresh to start new instances before old ones go.
        max_size=max(2 * replicas, 1),
        vpc_zone_identifiers=list(at.network.subnet_ids),
        launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
            id=template.id, version=template.latest_version.apply(str)
        ),
        target_group_arns=[target_group.arn],
        # Replace instances the target group finds unhealthy, not only ones EC2 finds dead.
        health_check_type="ELB",
        health_check_grace_period=90,
        # `pulumi up -s <colour>` returns only once this many instances pass the readiness
        # check in the target group, so the gate never smoke-tests an arm still booting.
        wait_for_elb_capacity=replicas,
        # A new version is a new launch template version: roll it out without dropping below
        # the requested capacity.
        instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
            strategy="Rolling",
            preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                min_healthy_percentage=100, max_healthy_percentage=200
            ),
        ),
        tags=[
            aws.autoscaling.GroupTagArgs(key=k, value=v, propagate_at_launch=True)
            for k, v in tags_of(s, s.color, s.version).items()
        ],
        opts=pulumi.ResourceOptions(parent=parent, provider=at.provider),
    )
    return group


def _target_group(
    name: str, parent: pulumi.Resource, cfg: AwsArm, settings: ArmSettings, at: Placed
) -> aws.lb.TargetGroup:
    """The target group of this arm's instances in `at`'s region: the edge's ALB there and this
    arm's direct one forward to it."""
    return aws.lb.TargetGroup(
        f"{name}-tg{at.suffix}",
        port=cfg.app_port,
        protocol="HTTP",
        target_type="instance",
        vpc_id=at.network.vpc_id,
        # An instance only gets traffic once it answers the readiness path with 200, from
        # this arm's own ALB and from the live one alike.
        health_check=aws.lb.TargetGroupHealthCheckArgs(
            enabled=True,
            protocol="HTTP",
            port="traffic-port",
            path=settings.health_path,
            matcher="200",
            interval=10,
            timeout=5,
            healthy_threshold=2,
            unhealthy_threshold=2,
        ),
        # The app answers in milliseconds; AWS's default 300 s drain would make every
        # instance refresh of a new version wait five minutes per batch.
        deregistration_delay=30,
        tags=tags_of(settings, settings.color, settings.version),
        opts=pulumi.ResourceOptions(parent=parent, provider=at.provider),
    )


@dataclass(frozen=True)
class AwsArm(ArmPlatform):
    network: Network
    ami: str
    """The image the launch template boots."""
    instance_type: str
    app_port: int
    regions: tuple[ArmRegion, ...] = ()
    """The regions it runs in besides its own (bluegreen:armRegions, arm_regions.py)."""

    @classmethod
    def from_config(cls, read: Reader) -> AwsArm:
        regions = arm_regions.read(read)
        if regions and read.optional("schemaRevision") is not None:
            read.problems.append(
                refused(
                    arm_regions.KEY,
                    read.optional(arm_regions.KEY),
                    "with bluegreen:schemaRevision the instances must reach the data stack's "
                    "database, which only its own VPC's db-clients group reaches",
                    "unset bluegreen:armRegions, or bluegreen:schemaRevision",
                )
            )
        return cls(
            network=Network.from_config(read),
            ami=aws_id(read, "ami", "the AMI the arm boots (ami-...)", "ami-0123abcd"),
            instance_type=read.matching("instanceType", _INSTANCE_TYPE),
            app_port=read.integer("appPort", 1, 65535),
            regions=regions,
        )

    def preflight(self, s: ArmSettings) -> None:
        arm_regions.refuse_home(self.regions, stack_region())

    def arm(
        self,
        name: str,
        parent: pulumi.Resource,
        settings: ArmSettings,
        data: DataLink | None = None,
    ) -> ArmEndpoint:
        tags = tags_of(settings, settings.color, settings.version)
        home = Placed(self.network, self.ami)
        target_group = _target_group(name, parent, self, settings, home)
        access = None
        if data is not None:
            access = aws_arm_data.data_access(name, parent, settings, self.network, data)
        _compute(name, parent, self, settings, target_group, home, access)
        what = f"bluegreen {settings.app_name} {settings.color}: direct endpoint, HTTP"
        alb = load_balancer(f"{name}-direct", parent, self.network, what, (80,), tags)
        listener = aws.lb.Listener(
            f"{name}-direct-http",
            load_balancer_arn=alb.arn,
            port=80,
            protocol="HTTP",
            default_actions=[
                aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)
            ],
            opts=pulumi.ResourceOptions(parent=parent),
        )
        # The endpoint resolves only once the listener forwards, so the gate never probes an
        # ALB that answers 503 for lack of a listener.
        ready = pulumi.Output.all(alb.dns_name, listener.arn).apply(lambda v: v[0])
        exports: dict[str, pulumi.Output] = {
            "targetGroupArn": target_group.arn,
            "albDnsName": alb.dns_name,
            "albZoneId": alb.zone_id,
        }
        if self.regions:
            exports["targetGroupArns"] = self.elsewhere(name, parent, settings, target_group)
        return ArmEndpoint(
            endpoint=ready.apply(lambda dns: f"http://{dns}"),
            nodes=ready.apply(lambda dns: [f"{dns}:80"]),
            exports=exports,
        )

    def elsewhere(
        self,
        name: str,
        parent: pulumi.Resource,
        settings: ArmSettings,
        own: aws.lb.TargetGroup,
    ) -> pulumi.Output[dict[str, str]]:
        """The arm's instances and target group in each region of bluegreen:armRegions, with the
        same user data, version and replicas as in its own; every region's target group."""
        home = aws.get_region_output().region
        tags = tags_of(settings, settings.color, settings.version)
        arns = {}
        for where in self.regions:
            provider = arm_regions.provider(name, parent, where.region, home)
            ami = arm_regions.image(name, parent, where, self.ami, home, provider, tags)
            at = Placed(where.network, ami, provider, f"-{where.region}")
            target_group = _target_group(name, parent, self, settings, at)
            _compute(name, parent, self, settings, target_group, at)
            arns[where.region] = target_group.arn
        return arm_regions.by_region(home, own.arn, arns)
