"""The policies. Importable, so tests call them with argument objects they build themselves.

They judge the inputs of the `bluegreen:index:Edge` and `bluegreen:index:Arm` components (the
pointer before and after, the weights before and after, each arm's direct endpoint and pinned
version, the live colour an arm deploy happens under), and where the question is "is it really
ready", they ask the arms themselves over HTTP. The guards of the database the arms share are in
data_rules.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from bluegreen_policy import data_rules, settings, smoke
from bluegreen_policy.observed import (
    ARM,
    EDGE,
    Report,
    config_of,
    no_config,
    observed,
    rising,
    stack_name,
    step_verb,
)
from bluegreen_policy.section_reader import plain

# Tests pin the clock; everything else reads the real one.
now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


# --- 1. smoke test before traffic moves ---------------------------------------------------------


def smoke_test(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != EDGE:
        return
    cfg = config_of(args, settings.smoke, report)
    props = observed(args, report) if cfg is not None else None
    if cfg is None or props is None:
        return
    arms, live = props.get("arms") or {}, props.get("previousColor")
    health = props.get("healthPath", "/healthz/ready")
    for target in rising(props):
        verb = f"{step_verb(props, target)} to {target}"
        arm = arms.get(target) or {}
        endpoint, pinned = arm.get("endpoint"), arm.get("version")
        if not endpoint:
            report(f"{verb} denied: the edge has no direct endpoint for {target}. Deploy {target}.")
            continue
        ready = smoke.fetch(endpoint.rstrip("/") + health, timeout=cfg.timeout_seconds)
        if ready.status != 200 or ready.readiness().get("status") != "ready":
            report(
                f"{verb} denied: {target} is not ready: {ready.describe()} "
                f"(needs HTTP 200 with status ready). "
                f"Fix {target} or keep {live or 'the edge'} as is."
            )
            continue
        serving = ready.readiness().get("version")
        if serving != pinned:
            report(
                f"{verb} denied: {target} serves version {serving} at {endpoint}, but its stack "
                f"pins {pinned}. Redeploy {target} (pulumi up -s {target}) before moving traffic."
            )
            continue
        failed_gold = False
        for gold in cfg.gold_requests:
            answer = smoke.fetch(endpoint + gold.path, gold.method, cfg.timeout_seconds)
            text = answer.body.decode(errors="replace")
            if answer.status != gold.status or gold.body_contains not in text:
                got = answer.describe() + (
                    f" without {gold.body_contains!r} in the body"
                    if answer.status == gold.status
                    else ""
                )
                report(
                    f"{verb} denied: gold request {gold.method} {gold.path} expected HTTP "
                    f"{gold.status}"
                    f"{' with ' + repr(gold.body_contains) if gold.body_contains else ''}"
                    f"; {got}. Fix {target} or keep {live or 'the current arm'} live."
                )
                failed_gold = True
        if failed_gold or not cfg.compare_arms or not live or live == target:
            continue
        if not arms.get(live, {}).get("endpoint"):
            continue
        c = smoke.compare(
            endpoint,
            arms[live]["endpoint"],
            cfg.sample_path,
            cfg.looks,
            cfg.concurrency,
            cfg.timeout_seconds,
            cfg.tolerance,
            cfg.scoring,
            (target, live),
        )
        smoke.write_report(target, live, c)
        if c.decision.outcome == "pass":
            continue
        measured = "; ".join(c.decision.lines(target, live))
        if c.inconclusive:
            report(
                f"{verb} denied: the comparison with {live} is still undecided after "
                f"{c.target.count} requests each ({settings.SMOKE} maxSamples): "
                f"{c.decision.reason}. Not decided is not a pass. Measured: {measured}. "
                f"Fix {target}, sample more, or keep {live} live."
            )
        else:
            first = f"; first failure: {c.target.first_error}" if c.target.first_error else ""
            report(
                f"{verb} denied: {target} is worse than {live}: {c.decision.reason}{first}. "
                f"Measured: {measured}. Fix {target} or keep {live} live."
            )


# --- 2. weights ----------------------------------------------------------------------------------


def weights_valid(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != EDGE:
        return
    cfg = config_of(args, settings.weights, report)
    if cfg is None:
        return
    props = plain(args.props)
    w, active = props.get("weights") or {}, props.get("activeColor")
    canary = props.get("canaryWeight")
    if set(w) != {"blue", "green"}:
        report(f"Edge {args.name} denied: weights {w} must name exactly blue and green.")
        return
    bad = {c: v for c, v in w.items() if not isinstance(v, int) or not 0 <= v <= 100}
    if bad:
        report(f"Edge {args.name} denied: weights {bad} must be integers from 0 to 100.")
        return
    if sum(w.values()) != 100:
        report(f"Edge {args.name} denied: weights {w} sum to {sum(w.values())}, not 100.")
        return
    if canary is None and w.get(active) != 100:
        report(
            f"Edge {args.name} denied: {active} is active but has weight {w.get(active)}, not 100, "
            "and no canary weight is configured. Set the weights from activeColor alone."
        )
    elif canary is not None and (canary not in cfg.canary_steps or w.get(active) != canary):
        report(
            f"Edge {args.name} denied: canary weight {canary} for {active} (weights {w}) is not "
            f"one of the configured steps {list(cfg.canary_steps)}. Use one of those steps."
        )


# --- 3. DNS TTL ----------------------------------------------------------------------------------


def dns_ttl(args: ResourceValidationArgs, report: Report) -> None:
    props = plain(args.props)
    if args.resource_type == EDGE:
        ttl, name = props.get("dnsTtl"), "bluegreen:dnsTtl"
        where = f"stack {stack_name(args)}"
    elif args.resource_type == "aws:route53/record:Record" or args.resource_type.endswith(
        ":DnsRecord"
    ):
        if EDGE in (args.opts.parent or ""):
            return  # declared by the edge from bluegreen:dnsTtl, which the edge is judged by
        ttl, name, where = props.get("ttl"), f"DNS record {props.get('name')}", args.name
    else:
        return
    cfg = config_of(args, settings.dns, report)
    if cfg is None or ttl is None:  # an alias record follows its target and has no TTL
        return
    if ttl > cfg.max_ttl_seconds:
        report(
            f"{name} {ttl:g} on {where} denied: a TTL above {cfg.max_ttl_seconds} s "
            f"({settings.DNS} maxTtlSeconds) means a rollback takes up to {ttl:g} s to reach "
            f"clients that cached the old answer. Set {name} to {cfg.max_ttl_seconds} or less."
        )


# --- 4. rollback target kept ---------------------------------------------------------------------


def rollback_target(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type not in (ARM, EDGE):
        return
    if not config_of(args, no_config(settings.ROLLBACK), report):
        return
    props = plain(args.props)
    if args.resource_type == ARM:
        props = observed(args, report)
        if props is None:
            return
        color, replicas = props.get("color"), props.get("replicas")
        if replicas is not None and replicas < 1 and props.get("liveColor") == color:
            report(
                f"Arm {color} denied: it is the live arm and this update scales it to {replicas}. "
                "Flip to the other arm first."
            )
        return
    if args.resource_type != EDGE:
        return
    arms = props.get("arms") or {}
    missing = [c for c in ("blue", "green") if not (arms.get(c) or {}).get("endpoint")]
    if missing:
        report(
            f"Edge {args.name} denied: arm {', '.join(missing)} has no endpoint; both arms must "
            "exist so that a rollback has somewhere to go. Deploy it first."
        )
        return
    # The arm losing traffic need not be healthy (a rollback escapes a broken arm); it must
    # only still exist, which the endpoints above show, and not be scaled away (its own stack).


# --- 5. no deploys to the live arm ---------------------------------------------------------------


def no_deploy_to_live_arm(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != ARM or not config_of(args, no_config(settings.LIVE_ARM), report):
        return
    props = observed(args, report)
    if props is None:
        return
    color, version = props.get("color"), props.get("version")
    serving, live = props.get("servingVersion"), props.get("liveColor")
    if live == color and serving is not None and serving != version:
        idle = "green" if color == "blue" else "blue"
        report(
            f"Deploy to {color} denied: {color} is the live arm (bluegreen:activeColor on the "
            f"live stack) and serves {serving}; this update would change it to {version} under "
            f"live traffic. Deploy {version} to the idle arm {idle} (pulumi up -s {idle}) and flip."
        )


# --- 6. change freeze ----------------------------------------------------------------------------


def _change(args: ResourceValidationArgs, props: Mapping[str, Any]) -> str | None:
    """What this resource's update does that a freeze stops, or None."""
    before = props.get("previousWeights")
    if args.resource_type == EDGE and before not in (None, props.get("weights")):
        return f"moving traffic to {props.get('activeColor')}"
    serving = props.get("servingVersion")
    if args.resource_type == ARM and serving not in (None, props.get("version")):
        return f"deploying {props.get('version')} to {props.get('color')}"
    return None


def change_freeze(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type not in (EDGE, ARM):
        return
    cfg = config_of(args, settings.freeze, report)
    if cfg is None or not cfg.windows:
        return
    props = observed(args, report)
    change = _change(args, props) if props is not None else None
    if change is None:
        return
    window = cfg.active(now())
    if window and not props.get("freezeOverride"):
        report(
            f"{change.capitalize()} denied: change freeze {window.describe()} is in force. "
            "Wait for it to end, or set bluegreen:freezeOverride on this stack to the reason "
            "(it is printed with every preview and update while set)."
        )


# --- 7. maintenance mode while weights move (advisory) -------------------------------------------


def maintenance_during_flip(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != EDGE or not plain(args.props).get("maintenance"):
        return
    props = observed(args, report)
    if props is not None and rising(props) and props.get("previousWeights"):
        report(
            f"Maintenance mode is on while traffic moves to {props.get('activeColor')}: "
            "writes are refused until it is lifted."
        )


POLICIES = [
    ResourceValidationPolicy(
        name=settings.SMOKE,
        description="The arm about to take traffic is ready, on its pinned version, passes the "
        "gold requests, and is no slower or more erroring than the arm that has it.",
        validate=smoke_test,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name=settings.WEIGHTS,
        description="Weights are integers 0-100 summing to 100; the active colour gets 100 "
        "unless a canary weight from the configured steps is set.",
        validate=weights_valid,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name=settings.DNS,
        description="Every DNS record the edge declares has a short TTL (30 s by default).",
        validate=dns_ttl,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name=settings.ROLLBACK,
        description="Both arms exist, and the live arm is never scaled to zero.",
        validate=rollback_target,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name=settings.LIVE_ARM,
        description="A new version goes to the idle arm, never to the arm serving live traffic.",
        validate=no_deploy_to_live_arm,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name=settings.FREEZE,
        description="No flips or arm deploys inside a configured change-freeze window, unless "
        "bluegreen:freezeOverride gives a reason.",
        validate=change_freeze,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name=settings.MAINTENANCE,
        description="Warns when traffic moves while the edge is in maintenance (read-only) mode.",
        validate=maintenance_during_flip,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    *data_rules.POLICIES,  # the shared database's guards
]
