"""The edge: the single pointer `activeColor` turned into a traffic switch in front of both arms."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import pulumi

from bluegreen import flip_evidence
from bluegreen.announce import WEBHOOK_URL
from bluegreen.config import COLORS, EdgeSettings, utc_text
from bluegreen.reader import NAMESPACE
from components.data import data_schema
from components.evidence import FlipRecord
from components.naming import qualified
from components.notice import WindowNotice
from platforms import dns
from platforms.base import Arms, ArmView, EdgePlatform
from platforms.stack_outputs import read_outputs

_ARM_OUTPUTS = ("color", "version", "endpoint", "nodes")


def _require_stack(name: str, color: str, configured: str) -> None:
    """The program's one optional stack read, and it fails closed: a missing arm stack stops the
    update here, in a sentence naming bluegreen:<color>Stack, and any other failure of the read
    is raised as it is. It is `pulumi:pulumi:readStackOutputs` as an invoke because a
    StackReference to a missing stack fails the whole update with the engine's bare "unknown
    stack". Every other read of a stack is a StackReference: that stack must exist."""
    if read_outputs(name) is None:
        raise pulumi.RunError(
            f'bluegreen:{color}Stack is "{configured}", but stack "{name}" does not exist: set '
            f"bluegreen:{color}Stack in Pulumi.live.yaml to the stack that holds the {color} arm "
            "(see `pulumi stack ls`). Nothing was changed."
        )


def arm_from_stack(settings: EdgeSettings, color: str) -> ArmView:
    """Read one arm's outputs through a StackReference; fail clearly if it is not deployed."""
    name = qualified(settings.arm_stacks[color])
    _require_stack(name, color, settings.arm_stacks[color])
    ref = pulumi.StackReference(f"arm-{color}", stack_name=name)

    def check(outputs: dict) -> dict:
        missing = [k for k in _ARM_OUTPUTS if outputs.get(k) in (None, "", [])]
        if missing:
            raise pulumi.RunError(
                f'The {color} arm (stack "{name}") has no {", ".join(missing)} output: '
                f"deploy it first with `pulumi up -s {settings.arm_stacks[color]}`, "
                f"or check bluegreen:{color}Stack."
            )
        if outputs["color"] != color:
            raise pulumi.RunError(
                f'bluegreen:{color}Stack points at stack "{name}", which is the {outputs["color"]} '
                f"arm, not the {color} one: fix bluegreen:{color}Stack in Pulumi.live.yaml."
            )
        return outputs

    outputs = ref.outputs.apply(check)
    return ArmView(
        color=color,
        endpoint=outputs.apply(lambda o: o["endpoint"]),
        version=outputs.apply(lambda o: o["version"]),
        nodes=outputs.apply(lambda o: o["nodes"]),
        outputs=outputs,
    )


@dataclass(frozen=True)
class EdgeArgs:
    settings: EdgeSettings
    """The edge stack's validated config; `settings.active_color` is the pointer."""
    arms: Arms
    """Both arms as read from their stacks."""
    platform: EdgePlatform
    """The adapter, with its own validated keys, that declares the traffic switch."""


class Edge(pulumi.ComponentResource):
    """The traffic switch: all traffic to the active colour, the other kept as fallback."""

    active_color: pulumi.Output[str]
    url: pulumi.Output[str]
    weights: pulumi.Output[dict[str, int]]
    versions: pulumi.Output[dict[str, str]]
    generation: pulumi.Output[str]
    """Fingerprint of the switch's config that serves, once the switch has applied it."""

    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None):
        s = args.settings
        weights = s.weights
        # The policy pack judges a flip by these inputs: the pointer and the weights it implies,
        # and each arm's direct endpoint and pinned version. What the edge serves now it reads
        # from this stack's last outputs itself (policy/bluegreen_policy/state.py), so that these
        # inputs are the same on every run without a config change and such a preview says
        # "no changes".
        gate = {
            "stack": qualified(s.stack),
            "activeColor": s.active_color,
            "weights": weights,
            "canaryWeight": s.canary_weight,
            "arms": {
                c: {"endpoint": a.endpoint, "version": a.version} for c, a in args.arms.items()
            },
            "healthPath": s.health_path,
            "dnsTtl": s.dns.ttl if s.dns else None,
            "maintenance": s.maintenance.enabled,
            "freezeOverride": s.freeze_override,
        }
        data = data_schema(s.data_stack)
        needs = {
            c: a.outputs.apply(lambda o: o.get("schemaRevision")) for c, a in args.arms.items()
        }
        if data is not None:
            # With a data stack: the revision each arm's release needs (its `schemaRevision`
            # output, null for an arm that keeps no data) and what the database has applied; the
            # pack refuses traffic to an arm whose revision is not applied, or whose shape an
            # applied contract removed (`floor`, set by `floorContract`).
            gate["schema"] = {
                "arms": needs,
                "applied": list(data.applied),
                "dataStack": qualified(s.data_stack),
            }
            if data.floor is not None:
                gate["schema"] |= {"floor": data.floor, "floorContract": data.floor_contract}
        super().__init__("bluegreen:index:Edge", name, gate, opts)
        served = args.platform.edge(name, self, s, args.arms)
        self.dns_records: list[pulumi.Resource] = []
        if s.dns:
            self.dns_records = dns.declare(
                name,
                self,
                s,
                s.dns,
                args.platform,
                edge_hosts=served.hosts or served.url.apply(lambda u: [urlsplit(u).hostname]),
                arm_hosts={
                    c: pulumi.Output.from_input(a.nodes).apply(dns.hosts)
                    for c, a in args.arms.items()
                },
            )
        # What the edge serves, as outputs that resolve only once the switch has applied it: an
        # update the policy pack refuses (or the switch fails) leaves the stack's last outputs as
        # they were, and those are what the next update's gate reads as "live now". Outputs taken
        # from config alone would record a refused flip as done, and let a retry skip the gate.
        # A preview shows the values the update will record, not an unknown.
        applied = (
            pulumi.Output.from_input(s.active_color)
            if pulumi.runtime.is_dry_run()
            else served.generation
        )
        self.active_color = applied.apply(lambda _: s.active_color)
        self.url = served.url
        self.generation = served.generation
        self.exports = dict(served.exports)
        if served.metrics is not None:
            self.exports["metrics"] = pulumi.Output.from_input(served.metrics)
        self.weights = applied.apply(lambda _: weights)
        # The share of live requests mirrored to the idle arm, which `bluegreen shadow` compares.
        self.exports["shadow"] = applied.apply(lambda _: s.shadow.percent)
        self.maintenance = applied.apply(lambda _: s.maintenance.enabled)
        self.versions = pulumi.Output.all(*[args.arms[c].version for c in COLORS]).apply(
            lambda vs: dict(zip(COLORS, vs, strict=True))
        )
        # What the edge read of each arm: `bluegreen status` reads this stack alone and asks
        # each arm itself how it is, rather than paying a `pulumi` process per arm stack.
        self.exports["arms"] = {
            c: {"stack": s.arm_stacks[c], "endpoint": a.endpoint, "version": a.version}
            for c, a in args.arms.items()
        }
        # For how long a rollback to the arm traffic leaves stays possible: the policy pack holds
        # back a contract that removes a shape its release needs until then.
        self.exports["rollbackWindowMinutes"] = s.rollback_window_minutes
        if data is not None:
            self.exports["dataStack"] = s.data_stack  # `bluegreen status` reads it only then
        # The evidence of this update, if it moves traffic: written once the switch applied it.
        # With a data stack it also says what each arm's release needs and what was applied
        # (flip_evidence.schema_record): the contract's rollback window reads it.
        record = FlipRecord(
            f"{name}-evidence",
            {
                "traffic": {"activeColor": s.active_color, "weights": weights},
                "versions": self.versions,
                "note": flip_evidence.note(os.environ) or None,
                "after": applied,
                "root": os.getcwd(),
                "file": s.evidence_file,
                "schema": None if data is None else {"arms": needs, "applied": list(data.applied)},
            },
            pulumi.ResourceOptions(parent=self),
        )
        self.exports["evidence"] = record.records
        # The window announced by whoever applies it (CI, a bare `pulumi up`, the command).
        m = s.maintenance
        WindowNotice(
            f"{name}-window",
            {
                "stack": s.stack,
                "enabled": m.enabled,
                "start": utc_text(m.window.start),
                "end": utc_text(m.window.end),
                "banner": m.banner,
                "live": s.active_color,
                "url": pulumi.Config(NAMESPACE).get_secret(WEBHOOK_URL),
            },
            pulumi.ResourceOptions(parent=self, depends_on=[record]),
        )
        self.register_outputs(
            {
                "activeColor": self.active_color,
                "url": self.url,
                "generation": self.generation,
                "weights": self.weights,
                "versions": self.versions,
                "maintenance": self.maintenance,
                **self.exports,
            }
        )
