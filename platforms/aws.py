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

import pulumi
import pulumi_aws as aws

from bluegreen import nginx
from bluegreen.config import COLORS, ConfigError, Settings
from platforms.base import WRITE_METHODS, ArmEndpoint, ArmView, EdgeEndpoint
from platforms.confirm import TrafficConfirmation

# Lower numbers win: the maintenance rule must be evaluated before any rule someone adds later.
MAINTENANCE_PRIORITY = 10
# Where the AMI carries the reference service (app/server.py) or anything taking the same flags.
APP_PATH = "/opt/bluegreen/server.py"
_SAFE = re.compile(r"^[A-Za-z0-9._/=:+-]+$")
_ANYWHERE = {"cidr_blocks": ["0.0.0.0/0"], "ipv6_cidr_blocks": ["::/0"]}


def _safe(value: str) -> str:
    """Refuse a value that could end a shell word or a unit-file line (config validated it too)."""
    if not _SAFE.match(value):
        raise ValueError(f"refusing to render {value!r} into instance user data")
    return value


def user_data(settings: Settings) -> str:
    """The boot script of every instance of this arm: a systemd unit running the app."""
    aws_cfg = settings.aws
    assert aws_cfg is not None and settings.color and settings.version
    argv = [
        "/usr/bin/python3",
        APP_PATH,
        f"--color={_safe(settings.color)}",
        f"--version={_safe(settings.version)}",
        "--host=0.0.0.0",
        f"--port={int(aws_cfg.app_port)}",
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
    name: str, parent: pulumi.Resource, settings: Settings, target_group: aws.lb.TargetGroup
) -> aws.autoscaling.Group:
    """Instances of this arm registered in `target_group`.

    Kept behind this one function so the arm's compute can be swapped (ECS, a fixed set of
    instances) without touching the target group, the direct ALB or the edge.
    """
    cfg = settings.aws
    assert cfg is not None
    # Both ALBs (this arm's own and the live one, in another stack) reach the instances from
    # inside the VPC; nothing outside the VPC can reach the app port directly.
    vpc = aws.ec2.get_vpc_output(id=cfg.vpc_id)
    sg = _security_group(
        f"{name}-instances",
        parent,
        cfg.vpc_id,
        f"bluegreen {settings.app_name} {settings.color}: app port from the VPC",
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
        user_data=base64.b64encode(user_data(settings).encode()).decode(),
        # IMDSv2 only: a request forged through the app cannot read instance credentials.
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_tokens="required", http_endpoint="enabled"
        ),
        tags=_tags(settings),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    replicas = settings.replicas
    group = aws.autoscaling.Group(
        f"{name}-group",
        desired_capacity=replicas,
        min_size=replicas,
        # Room for a rolling instance refresh to start new instances before old ones go.
        max_size=max(2 * replicas, 1),
        vpc_zone_identifiers=list(cfg.subnet_ids),
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
            for k, v in _tags(settings).items()
        ],
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return group


def _tags(settings: Settings) -> dict[str, str]:
    tags = {"bluegreen:app": settings.app_name, "bluegreen:stack": settings.stack}
    if settings.color:
        tags["bluegreen:color"] = settings.color
    if settings.version:
        tags["bluegreen:version"] = settings.version
    return tags


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


class AwsPlatform:
    def preflight(self, settings: Settings) -> None:
        problems = []
        if settings.aws is None:
            problems.append("bluegreen:platform aws needs bluegreen:vpcId and bluegreen:subnetIds")
        elif settings.role == "edge" and settings.aws.certificate_arn:
            if not settings.aws.certificate_arn.startswith("arn:aws"):
                problems.append(
                    "bluegreen:certificateArn must be an ACM certificate ARN "
                    f'(arn:aws:acm:...), got "{settings.aws.certificate_arn}"'
                )
        if problems:
            raise ConfigError(problems)

    def arm(self, name: str, parent: pulumi.Resource, settings: Settings) -> ArmEndpoint:
        cfg = settings.aws
        assert cfg is not None and settings.color and settings.version
        target_group = aws.lb.TargetGroup(
            f"{name}-tg",
            port=cfg.app_port,
            protocol="HTTP",
            target_type="instance",
            vpc_id=cfg.vpc_id,
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
            tags=_tags(settings),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        _compute(name, parent, settings, target_group)

        sg = _security_group(
            f"{name}-direct-sg",
            parent,
            cfg.vpc_id,
            f"bluegreen {settings.app_name} {settings.color}: direct endpoint, HTTP",
            _http_in(80),
        )
        alb = aws.lb.LoadBalancer(
            f"{name}-direct",
            load_balancer_type="application",
            subnets=list(cfg.subnet_ids),
            security_groups=[sg.id],
            drop_invalid_header_fields=True,
            tags=_tags(settings),
            opts=pulumi.ResourceOptions(parent=parent),
        )
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

    def edge(
        self,
        name: str,
        parent: pulumi.Resource,
        settings: Settings,
        arms: dict[str, ArmView],
        weights: dict[str, int],
    ) -> EdgeEndpoint:
        cfg = settings.aws
        assert cfg is not None
        https = bool(cfg.certificate_arn)
        sg = _security_group(
            f"{name}-alb-sg",
            parent,
            cfg.vpc_id,
            f"bluegreen {settings.app_name} live ALB: HTTP and HTTPS",
            _http_in(80, 443),
        )
        alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            subnets=list(cfg.subnet_ids),
            security_groups=[sg.id],
            drop_invalid_header_fields=True,
            tags=_tags(settings),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        target_groups = {c: _arm_output(arms[c], "targetGroupArn") for c in COLORS}
        # bluegreen:stickyCanary alone keeps clients for a day, as the nginx edges' cookie does.
        sticky_s = cfg.stickiness_seconds or (86400 if settings.sticky else 0)
        switch = forward_action(target_groups, weights, sticky_s)
        if https:
            listener = aws.lb.Listener(
                f"{name}-https",
                load_balancer_arn=alb.arn,
                port=443,
                protocol="HTTPS",
                certificate_arn=cfg.certificate_arn,
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
                            message_body=nginx.maintenance_error_body(m.status, m.retry_after_s),
                        ),
                    )
                ],
                opts=pulumi.ResourceOptions(parent=parent),
            )

        fingerprint = nginx.generation(
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
        )
