"""AWS: each arm is an Auto Scaling group behind its own target group; the edge is an ALB.

The traffic switch is the live ALB listener's default action: one weighted `forward` over both
arms' target groups. A flip or a canary step changes two integers on one listener, which the ALB
applies to new requests at once; no instance, target group or DNS record changes.

Every arm also has a small ALB of its own that reaches it alone: the policy pack smoke-tests the
idle arm through it before any traffic moves, and people can try the new version there.

Nothing here creates resources inside `apply()`; the preview shows everything `up` will do.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from bluegreen.config import COLORS, ArmSettings, Common, EdgeSettings
from bluegreen.reader import Alphabet, Reader
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
from platforms.confirm import TrafficConfirmation

# Lower numbers win: the maintenance rule must be evaluated before any rule someone adds later.
MAINTENANCE_PRIORITY = 10
# Where the AMI carries the reference service (app/server.py) or anything taking the same flags.
APP_PATH = "/opt/bluegreen/server.py"
_SAFE = re.compile(r"^[A-Za-z0-9._/=:+-]+$")
_ANYWHERE = {"cidr_blocks": ["0.0.0.0/0"], "ipv6_cidr_blocks": ["::/0"]}
_AWS_ID = re.compile(r"[a-z]+-[0-9a-f]{8,17}")
_INSTANCE_TYPE = Alphabet(r"[a-z0-9]+\.[a-z0-9]+", "an instance type such as t3.small")


def _aws_id(read: Reader, key: str, why: str, example: str) -> str:
    value = read.required(key, f": the aws platform needs {why}")
    if value and not _AWS_ID.fullmatch(value):
        read.problems.append(f'bluegreen:{key} must look like {example}, got "{value}"')
    return value


@dataclass(frozen=True)
class Network:
    """Where the ALBs and the arms' instances live; both roles need it."""

    vpc_id: str
    subnet_ids: tuple[str, ...]

    @classmethod
    def from_config(cls, read: Reader) -> Network:
        vpc = _aws_id(read, "vpcId", "the VPC id (vpc-...)", "vpc-0123abcd")
        subnets = read.strings("subnetIds")
        if len(subnets) < 2:
            read.problems.append(
                "bluegreen:subnetIds must list at least two subnets in different zones "
                f"(an ALB needs two), got {list(subnets)}"
            )
        return cls(vpc_id=vpc, subnet_ids=subnets)


def _safe(value: str) -> str:
    """Refuse a value that could end a shell word or a unit-file line (config validated it too)."""
    if not _SAFE.match(value):
        raise ValueError(f"refusing to render {value!r} into instance user data")
    return value


def user_data(settings: ArmSettings, app_port: int) -> str:
    """The boot script of every instance of this arm: a systemd unit running the app."""
    argv = [
        "/usr/bin/python3",
        APP_PATH,
        f"--color={_safe(settings.color)}",
        f"--version={_safe(settings.version)}",
        "--host=0.0.0.0",
        f"--port={int(app_port)}",
        f"--health-path={_safe(settings.health_path)}",
    ]
    exec_start = " ".join(shlex.quote(a) for a in argv)
    return f"""#!/bin/sh
# bluegreen {settings.app_name} {settings.color} {settings.version}
set -eu
cat >/etc/systemd/system/bluegreen-app.service <<'UNIT'
[Unit]
Description=bluegreen {_safe(settings.app_name)} {settings.color} {settings.version}
After=network-online.target
Wants=network-online.target

[Service]
ExecStart={exec_start}
Restart=always
RestartSec=1
DynamicUser=yes

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now bluegreen-app.service
"""


def _security_group(
    name: str,
    parent: pulumi.Resource,
    vpc_id: str,
    description: str,
    ingress: list[aws.ec2.SecurityGroupIngressArgs],
) -> aws.ec2.SecurityGroup:
    return aws.ec2.SecurityGroup(
        name,
        vpc_id=vpc_id,
        description=description,
        ingress=ingress,
        # The provider removes AWS's default allow-all egress rule, so state it: load balancers
        # must reach their targets and instances must reach package mirrors.
        egress=[
            aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0, **_ANYWHERE)
        ],
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _http_in(*ports: int) -> list[aws.ec2.SecurityGroupIngressArgs]:
    return [
        aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=p, to_port=p, **_ANYWHERE)
        for p in ports
    ]


def _compute(
    name: str,
    parent: pulumi.Resource,
    cfg: AwsArm,
    s: ArmSettings,
    target_group: aws.lb.TargetGroup,
) -> aws.autoscaling.Group:
    """Instances of this arm registered in `target_group`.

    Kept behind this one function so the arm's compute can be swapped (ECS, a fixed set of
    instances) without touching the target group, the direct ALB or the edge.
    """
    # Both ALBs (this arm's own and the live one, in another stack) reach the instances from
    # inside the VPC; nothing outside the VPC can reach the app port directly.
    vpc = aws.ec2.get_vpc_output(id=cfg.network.vpc_id)
    sg = _security_group(
        f"{name}-instances",
        parent,
        cfg.network.vpc_id,
        f"bluegreen {s.app_name} {s.color}: app port from the VPC",
        [
            aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp",
                from_port=cfg.app_port,
                to_port=cfg.app_port,
                cidr_blocks=[vpc.cidr_block],
            )
        ],
    )
    template = aws.ec2.LaunchTemplate(
        f"{name}-launch",
        image_id=cfg.ami,
        instance_type=cfg.instance_type,
        vpc_security_group_ids=[sg.id],
        user_data=base64.b64encode(user_data(s, cfg.app_port).encode()).decode(),
        # IMDSv2 only: a request forged through the app cannot read instance credentials.
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_tokens="required", http_endpoint="enabled"
        ),
        tags=_tags(s, s.color, s.version),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    replicas = s.replicas
    group = aws.autoscaling.Group(
        f"{name}-group",
        desired_capacity=replicas,
        min_size=replicas,
        # Room for a rolling instance refresh to start new instances before old ones go.
        max_size=max(2 * replicas, 1),
        vpc_zone_identifiers=list(cfg.network.subnet_ids),
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
            for k, v in _tags(s, s.color, s.version).items()
        ],
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return group


def _tags(s: Common, *arm: str) -> dict[str, str]:
    """The app and the stack, and an arm's colour and version."""
    tags = {"bluegreen:app": s.app_name, "bluegreen:stack": s.stack}
    return tags | dict(zip(("bluegreen:color", "bluegreen:version"), arm, strict=False))


def _arm_output(arm: ArmView, key: str) -> pulumi.Output[str]:
    """One AWS-specific output of an arm stack; an arm deployed elsewhere fails clearly."""

    def pick(outputs: dict) -> str:
        value = outputs.get(key)
        if not value:
            raise pulumi.RunError(
                f"The {arm.color} arm has no {key} output: it was not deployed with "
                f"bluegreen:platform aws. Deploy it with `pulumi up -s {arm.color}` on aws, or "
                f"check bluegreen:{arm.color}Stack."
            )
        return value

    return arm.outputs.apply(pick)


def arn_suffix(arn: str) -> str:
    """What CloudWatch's ALB dimensions name a target group or load balancer by: its ARN after
    the account, e.g. targetgroup/blue-tg/0123456789abcdef."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith(("targetgroup/", "app/")):
        raise pulumi.RunError(f"{arn!r} is not the ARN of an ALB or of its target group")
    return parts[5]


def forward_action(
    target_groups: dict[str, pulumi.Input[str]], weights: dict[str, int], stickiness_s: int
) -> aws.lb.ListenerDefaultActionArgs:
    """The traffic switch: one weighted forward over both arms, blue first."""
    return aws.lb.ListenerDefaultActionArgs(
        type="forward",
        forward=aws.lb.ListenerDefaultActionForwardArgs(
            # A stable order keeps a flip's diff to the two weights.
            target_groups=[
                aws.lb.ListenerDefaultActionForwardTargetGroupArgs(
                    arn=target_groups[c], weight=int(weights.get(c, 0))
                )
                for c in COLORS
            ],
            # Target-group stickiness: during a canary step a client stays on the arm it first
            # reached, instead of bouncing between versions request by request.
            stickiness=aws.lb.ListenerDefaultActionForwardStickinessArgs(
                enabled=True, duration=stickiness_s
            )
            if stickiness_s > 0
            else None,
        ),
    )


def _alb(
    name: str, parent: pulumi.Resource, network: Network, what: str, ports: tuple[int, ...], tags
) -> aws.lb.LoadBalancer:
    """An application load balancer open to the world on `ports`."""
    sg = _security_group(f"{name}-sg", parent, network.vpc_id, what, _http_in(*ports))
    return aws.lb.LoadBalancer(
        name,
        load_balancer_type="application",
        subnets=list(network.subnet_ids),
        security_groups=[sg.id],
        drop_invalid_header_fields=True,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )


@dataclass(frozen=True)
class AwsArm(ArmPlatform):
    network: Network
    ami: str
    """The image the launch template boots."""
    instance_type: str
    app_port: int

    @classmethod
    def from_config(cls, read: Reader) -> AwsArm:
        return cls(
            network=Network.from_config(read),
            ami=_aws_id(read, "ami", "the AMI the arm boots (ami-...)", "ami-0123abcd"),
            instance_type=read.matching("instanceType", _INSTANCE_TYPE),
            app_port=read.integer("appPort", 1, 65535),
        )

    def arm(self, name: str, parent: pulumi.Resource, settings: ArmSettings) -> ArmEndpoint:
        tags = _tags(settings, settings.color, settings.version)
        target_group = aws.lb.TargetGroup(
            f"{name}-tg",
            port=self.app_port,
            protocol="HTTP",
            target_type="instance",
            vpc_id=self.network.vpc_id,
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
            tags=tags,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        _compute(name, parent, self, settings, target_group)
        what = f"bluegreen {settings.app_name} {settings.color}: direct endpoint, HTTP"
        alb = _alb(f"{name}-direct", parent, self.network, what, (80,), tags)
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
        return ArmEndpoint(
            endpoint=ready.apply(lambda dns: f"http://{dns}"),
            nodes=ready.apply(lambda dns: [f"{dns}:80"]),
            exports={
                "targetGroupArn": target_group.arn,
                "albDnsName": alb.dns_name,
                "albZoneId": alb.zone_id,
            },
        )


@dataclass(frozen=True)
class AwsEdge(EdgePlatform):
    network: Network
    certificate_arn: str | None
    """Serve HTTPS with this ACM certificate; plain HTTP when None."""
    stickiness_seconds: int
    """Keep a client on one target group for this long during canary steps (0: off)."""

    @classmethod
    def from_config(cls, read: Reader) -> AwsEdge:
        arn = read.optional("certificateArn")
        if arn is not None and not arn.startswith("arn:aws"):
            read.problem("certificateArn", arn, "an ACM certificate ARN (arn:aws:acm:...)")
        # The hold reads the ALB's own metrics in CloudWatch (cutover/cloudwatch.py).
        metrics_keys.source(read, "aws", ("cloudwatch",))
        return cls(
            network=Network.from_config(read),
            certificate_arn=arn,
            stickiness_seconds=read.integer("stickinessSeconds", 0, 604800),
        )

    def refusals(self, settings: EdgeSettings) -> list[str]:
        """What an ALB cannot do: cache, mirror requests, or limit the request rate or the
        connections. Only values other than the defaults are refused."""
        alb = "the aws edge (an ALB)"
        only = "the only value on aws"
        found = []
        cache = settings.cache
        if cache.enabled:
            found.append(
                refused(
                    "cache",
                    True,
                    f"{alb} has no cache",
                    f"set it to false, {only}, and put CloudFront in front of the ALB if you "
                    "need an edge cache",
                )
            )
            if cache.warm_paths:  # without the cache, config.py already refuses them
                found.append(
                    refused(
                        "cacheWarmPaths",
                        cache.warm_paths,
                        f"{alb} has no cache to warm",
                        f"leave it unset, {only}",
                    )
                )
        if settings.shadow.percent > 0:
            found.append(
                refused(
                    "shadow",
                    settings.shadow.percent,
                    f"{alb} has no request mirroring, so it cannot copy live requests to the "
                    "idle arm",
                    f"set it to 0, {only}",
                )
            )
        found.extend(write_refusals(settings, alb, only))
        waf = "an AWS WAF rate-based rule on the ALB is the AWS way, outside bluegreen"
        b = settings.backpressure
        if b.rate > 0:
            found.append(
                refused(
                    "rateLimit",
                    b.rate,
                    f"{alb} has no request-rate limit",
                    f"set it to 0, {only}; {waf}",
                )
            )
        if b.connections > 0:
            found.append(
                refused(
                    "connectionLimit",
                    b.connections,
                    f"{alb} has no connection cap",
                    f"set it to 0, {only}; {waf}",
                )
            )
        return found

    def edge(
        self, name: str, parent: pulumi.Resource, settings: EdgeSettings, arms: Arms
    ) -> EdgeEndpoint:
        https = self.certificate_arn is not None
        what = f"bluegreen {settings.app_name} live ALB: HTTP and HTTPS"
        alb = _alb(f"{name}-alb", parent, self.network, what, (80, 443), _tags(settings))
        target_groups = {c: _arm_output(arms[c], "targetGroupArn") for c in COLORS}
        # bluegreen:stickyCanary alone keeps clients for a day, as the nginx edges' cookie does.
        sticky_s = self.stickiness_seconds or (86400 if settings.sticky else 0)
        weights = settings.weights
        switch = forward_action(target_groups, weights, sticky_s)
        if https:
            listener = aws.lb.Listener(
                f"{name}-https",
                load_balancer_arn=alb.arn,
                port=443,
                protocol="HTTPS",
                certificate_arn=self.certificate_arn,
                ssl_policy="ELBSecurityPolicy-TLS13-1-2-2021-06",
                default_actions=[switch],
                opts=pulumi.ResourceOptions(parent=parent),
            )
            # Plain HTTP only redirects: no request reaches an arm unencrypted.
            aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=alb.arn,
                port=80,
                protocol="HTTP",
                default_actions=[
                    aws.lb.ListenerDefaultActionArgs(
                        type="redirect",
                        redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                            protocol="HTTPS", port="443", status_code="HTTP_301"
                        ),
                    )
                ],
                opts=pulumi.ResourceOptions(parent=parent),
            )
        else:
            listener = aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=alb.arn,
                port=80,
                protocol="HTTP",
                default_actions=[switch],
                opts=pulumi.ResourceOptions(parent=parent),
            )

        m = settings.maintenance
        if m.enabled:
            # Maintenance (read-only) mode: writes are answered by the ALB, reads still go to
            # the arms. An ALB fixed response cannot carry headers, so there is no Retry-After
            # header here (nginx edges send one); the same JSON body every edge sends carries
            # the delay as "retryAfter" (seconds) instead.
            aws.lb.ListenerRule(
                f"{name}-maintenance",
                listener_arn=listener.arn,
                priority=MAINTENANCE_PRIORITY,
                conditions=[
                    aws.lb.ListenerRuleConditionArgs(
                        http_request_method=aws.lb.ListenerRuleConditionHttpRequestMethodArgs(
                            values=list(WRITE_METHODS)
                        )
                    )
                ],
                actions=[
                    aws.lb.ListenerRuleActionArgs(
                        type="fixed-response",
                        fixed_response=aws.lb.ListenerRuleActionFixedResponseArgs(
                            content_type="application/json",
                            status_code=str(m.status),
                            message_body=maintenance_body(m),
                        ),
                    )
                ],
                opts=pulumi.ResourceOptions(parent=parent),
            )

        fingerprint = generation(
            json.dumps(
                {
                    "weights": weights,
                    "stickiness": sticky_s,
                    "maintenance": [m.enabled, m.status, m.retry_after_s],
                    "https": https,
                },
                sort_keys=True,
            )
        )
        scheme = "https" if https else "http"
        url = pulumi.Output.all(alb.dns_name, listener.arn).apply(lambda v: f"{scheme}://{v[0]}/")
        weighted = [c for c, w in weights.items() if w > 0]
        confirm = TrafficConfirmation(
            f"{name}-confirm",
            {
                "url": url,
                "color": weighted[0] if len(weighted) == 1 else None,
                "fingerprint": fingerprint,
                "timeout": max(settings.flip_timeout_s, 60),  # ALB changes take a while
            },
            pulumi.ResourceOptions(parent=parent, depends_on=[listener]),
        )
        return EdgeEndpoint(
            url=url,
            generation=listener.arn.apply(lambda _: fingerprint),
            exports={
                "albDnsName": alb.dns_name,
                "albZoneId": alb.zone_id,
                "confirmedAfterSeconds": confirm.confirmedAfterSeconds,
            },
            metrics=self.metrics(alb, target_groups),
        )

    @staticmethod
    def metrics(
        alb: aws.lb.LoadBalancer, target_groups: dict[str, pulumi.Output[str]]
    ) -> pulumi.Output[dict]:
        """The hold's source: CloudWatch's metrics of this ALB per arm target group, in the
        region the ALB is in (the provider's)."""
        colors = list(target_groups)
        region = aws.get_region_output().region
        return pulumi.Output.all(region, alb.arn_suffix, *[target_groups[c] for c in colors]).apply(
            lambda v: {
                "source": "cloudwatch",
                "region": v[0],
                "loadBalancer": v[1],
                "targetGroups": {c: arn_suffix(a) for c, a in zip(colors, v[2:], strict=True)},
            }
        )


ARM = AwsArm
EDGE = AwsEdge
