"""The traffic switch on AWS: the live ALB listener's default action, one weighted `forward` over
both arms' target groups. A flip or a canary step changes two integers on one listener, which the
ALB applies to new requests at once. With HTTPS, plain HTTP only redirects; maintenance is a
listener rule answering writes before any arm."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from bluegreen.config import COLORS, Maintenance
from bluegreen.switch import WRITE_METHODS, maintenance_body
from platforms.base import ArmView

# Lower numbers win: the maintenance rule must be evaluated before any rule someone adds later.
MAINTENANCE_PRIORITY = 10


def arm_output(arm: ArmView, key: str) -> pulumi.Output[str]:
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


def live_listener(
    name: str,
    parent: pulumi.Resource,
    alb: aws.lb.LoadBalancer,
    switch: aws.lb.ListenerDefaultActionArgs,
    certificate_arn: str | None,
    provider: pulumi.ProviderResource | None = None,
    site: str = "",
) -> aws.lb.Listener:
    """The listener that carries `switch`: HTTPS with `certificate_arn` (and HTTP redirecting to
    it), else HTTP. With several edges, `site` ("-<site>" but for the first, alb_sites.py) ends
    the names and `provider` is its region's."""
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    if certificate_arn is None:
        return aws.lb.Listener(
            f"{name}-http{site}",
            load_balancer_arn=alb.arn,
            port=80,
            protocol="HTTP",
            default_actions=[switch],
            opts=opts,
        )
    listener = aws.lb.Listener(
        f"{name}-https{site}",
        load_balancer_arn=alb.arn,
        port=443,
        protocol="HTTPS",
        certificate_arn=certificate_arn,
        ssl_policy="ELBSecurityPolicy-TLS13-1-2-2021-06",
        default_actions=[switch],
        opts=opts,
    )
    # Plain HTTP only redirects: no request reaches an arm unencrypted.
    aws.lb.Listener(
        f"{name}-http{site}",
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
        opts=opts,
    )
    return listener


def maintenance_rule(
    name: str,
    parent: pulumi.Resource,
    listener: aws.lb.Listener,
    m: Maintenance,
    provider: pulumi.ProviderResource | None = None,
    site: str = "",
) -> aws.lb.ListenerRule:
    """Maintenance (read-only) mode: writes are answered by the ALB, reads still go to the arms.
    An ALB fixed response cannot carry headers, so there is no Retry-After header here (nginx
    edges send one); the same JSON body every edge sends carries the delay as "retryAfter"
    (seconds) instead."""
    return aws.lb.ListenerRule(
        f"{name}-maintenance{site}",
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
        opts=pulumi.ResourceOptions(parent=parent, provider=provider),
    )
