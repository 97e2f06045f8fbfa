"""What a policy reads of a resource besides its own inputs: its section of the pack's config, and
what the stacks serve now (state.py), so that rules.py only judges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs

from bluegreen_policy import state
from bluegreen_policy.section_reader import PolicyConfigError, plain
from bluegreen_policy.settings import no_settings

EDGE = "bluegreen:index:Edge"
ARM = "bluegreen:index:Arm"
MIGRATIONS = ("pulumi-python:dynamic/data:Migration", "pulumi-python:dynamic/bluegreen:Migration")
"""The data stack's migration (platforms/migration.py; a dynamic resource's type names its
module and name)."""
Report = Callable[..., None]


def config_of(args: ResourceValidationArgs, parse, report: Report):
    """The policy's parsed config, or None after reporting why it is invalid."""
    try:
        return parse(args.get_config())
    except PolicyConfigError as err:
        report(str(err))
        return None


def no_config(name: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda raw: no_settings(name, raw) or True


def stack_name(args: ResourceValidationArgs) -> str:
    """The stack a resource belongs to, from its URN (urn:pulumi:STACK::PROJECT::...)."""
    return args.urn.split("::", 1)[0].rsplit(":", 1)[-1]


def outputs_of(stack: str | None) -> dict[str, Any]:
    """A stack's last outputs; empty when it has none (never deployed, or not named)."""
    return (state.outputs(stack) or {}) if stack else {}


def observed(args: ResourceValidationArgs, report: Report) -> dict[str, Any] | None:
    """The resource's inputs plus what the stacks serve now (state.py): for the edge the
    colour and weights it serves (`previousColor`, `previousWeights`), for an arm the live colour
    (`liveColor`) and the version it serves (`servingVersion`). None after reporting a failed read:
    a gate that cannot see what is live refuses rather than guess."""
    props = dict(plain(args.props))
    try:
        if args.resource_type == EDGE:
            before = outputs_of(props.get("stack"))
            props["previousColor"] = before.get("activeColor")
            props["previousWeights"] = before.get("weights")
        elif args.resource_type == ARM:
            live, own = outputs_of(props.get("liveStack")), outputs_of(props.get("stack"))
            props["liveColor"] = live.get("activeColor")
            props["servingVersion"] = own.get("version")
    except state.StateReadError as err:
        report(
            f"{args.name} denied: the gate cannot read what is live now ({err}). "
            "Nothing was changed; check the backend (pulumi login, PULUMI_BACKEND_URL)."
        )
        return None
    return props


def short(stack: str | None) -> str:
    """A stack's own name (org/project/NAME), as `pulumi up -s` takes it in this project."""
    return (stack or "").rsplit("/", 1)[-1]


MIGRATION_INPUTS = (
    "stack",
    "target",
    "applied",
    "revisions",
    "pending",
    "armStacks",
    "liveStack",
)
"""What the data guards read of a migration: never its `dsn`, which a preview may not know yet."""


def inputs(args: ResourceValidationArgs, keys: tuple[str, ...]) -> dict[str, Any]:
    """Those of the resource's inputs a policy reads, normalised: an input it does not read that
    a preview cannot know yet (an unknown) leaves the policy able to run."""
    present = set(args.props)
    return {k: plain(args.props[k]) for k in keys if k in present}


def migration_observed(args: ResourceValidationArgs, report: Report) -> dict[str, Any] | None:
    """A migration's inputs plus what the stacks it must not break say now: the revision each arm
    stack needs (`armNeeds`: colour to its `schemaRevision` output, None for a stateless arm or
    none deployed), and of the live stack its traffic (`liveWeights`), its traffic changes
    (`evidence`, the newest last) and its `rollbackWindowMinutes`. None after reporting a failed
    read, as `observed`."""
    props = inputs(args, MIGRATION_INPUTS)
    try:
        stacks = props.get("armStacks") or {}
        props["armNeeds"] = {c: outputs_of(s).get("schemaRevision") for c, s in stacks.items()}
        live = outputs_of(props.get("liveStack"))
        props["liveWeights"] = live.get("weights") or {}
        props["evidence"] = live.get("evidence") or []
        props["rollbackWindowMinutes"] = live.get("rollbackWindowMinutes")
    except state.StateReadError as err:
        report(
            f"{args.name} denied: the gate cannot read what the arms and the live stack run now "
            f"({err}). Nothing was changed; check the backend (pulumi login, PULUMI_BACKEND_URL)."
        )
        return None
    return props


def rising(props: Mapping[str, Any]) -> list[str]:
    """Colours whose share of traffic this update raises (all weighted ones on a first deploy)."""
    before = props.get("previousWeights") or {}
    return sorted(c for c, w in (props.get("weights") or {}).items() if w > before.get(c, 0))


def step_verb(props: Mapping[str, Any], color: str) -> str:
    return "Canary step" if (props.get("weights") or {}).get(color, 0) < 100 else "Flip"
