"""`bluegreen status`: what the edge serves, how each arm answers, the schema revisions (with a
data stack), the last traffic changes (the live stack's evidence), the maintenance queue and this
machine's flip log, as text."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from bluegreen import probe
from bluegreen.config import COLORS, other
from bluegreen.live_stack import ArmOutputs, LiveOutputs, SchemaOutputs, Traffic
from bluegreen.reader import VERSION
from bluegreen.switch import STATUS_PATH
from cutover import queue
from cutover.hold import judged
from cutover.results import Outcome, Report

if TYPE_CHECKING:
    from cutover.operator import Operator


def status(op: Operator) -> Report:
    """What the edge serves and how each arm answers now, from the live stack's outputs
    alone (one `pulumi` process): the arms it names are asked directly (readiness, and the
    version each serves). Arm stacks are read only when the live stack names none."""
    live = op.outputs_now()
    arms = live.arms
    if not live.deployed:
        op.out(f"{op.stack}: not deployed (pulumi up --stack {op.stack})")
    else:
        op.out(
            f"{op.stack}: {live.active_color}  "
            f"weights blue {live.weight('blue')} / green {live.weight('green')}  "
            f"maintenance {'ON' if live.maintenance else 'off'}  edge {live.url}"
        )
    for line in edge_lines(live.edges, live.edge_traffic):
        op.out(line)
    if arms is None or set(arms) != set(COLORS):
        found = op.ws.outputs_of(op.edge.arm_stacks[c] for c in COLORS)
        arms = {c: ArmOutputs.from_outputs(found[op.edge.arm_stacks[c]]) for c in COLORS}
    for color in COLORS:
        op.out(arm_line(op, color, arms[color]))
    found = schema_view(op, live)
    for line in schema_lines(found) if found is not None else []:
        op.out(line)
    for line in _changes(op.stack, live):
        op.out(line)
    for line in queue.status_lines(op.queue_where()):
        op.out(line)
    entries = op.log.last(5)
    op.out("this machine's flip log:" if entries else "this machine's flip log: none recorded")
    for e in entries:
        op.out(
            f"  {e['time']} {e['event']:<8} {e.get('from')} -> {e.get('to')}  {e.get('phase')}"
            f"{'  ' + e['breach'] if e.get('breach') else ''}  by {e['who']}"
        )
    return Report(Outcome.DONE)


def edge_lines(edges: Mapping[str, str], recorded: Mapping[str, Traffic]) -> list[str]:
    """With several edges, what each serves: asked of it (its status document), at once, where
    each has an address of its own; else, or when it does not answer one, what the last update
    recorded it serving (on kubernetes every cluster's ingress has the one host name, and DNS
    picks which answers)."""
    own = len(set(edges.values())) == len(edges)

    def line(site: str, url: str) -> str:
        answer = probe.request(url.rstrip("/") + STATUS_PATH) if own else None
        live = answer.json().get("live") if answer and answer.ok else None
        if isinstance(live, Mapping):
            weights = live.get("weights") or {}
            return (
                f"  edge {site} {url}: {live.get('color')} ({live.get('version')})  "
                f"weights blue {weights.get('blue')} / green {weights.get('green')}"
            )
        traffic = recorded.get(site) or Traffic()
        asked = f"; {answer.describe() if not answer.ok else 'no state'}" if answer else ""
        return (
            f"  edge {site} {url}: {traffic.active_color} as recorded  weights blue "
            f"{traffic.weight('blue')} / green {traffic.weight('green')}{asked}"
        )

    if not edges:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(edges))) as pool:
        return list(pool.map(line, edges, edges.values()))


def schema_view(
    op: Operator, live: LiveOutputs, arms: Mapping[str, ArmOutputs] | None = None
) -> dict | None:
    """With a data stack (the live stack exports `dataStack` when its edge read one), what
    `schema_summary` makes of the data stack's outputs and of what each arm stack needs now;
    None without one, and no stack is read. `arms`: the arm stacks' outputs, if already read;
    else they are read at once with the data stack's (the revisions the edge last read may be
    older than an arm's last deploy)."""
    name = live.data_stack
    if name is None:
        return None
    if arms is None:
        stacks = {c: op.edge.arm_stacks[c] for c in COLORS}
        found = op.ws.outputs_of([name, *stacks.values()])
        arms = {c: ArmOutputs.from_outputs(found[stacks[c]]) for c in COLORS}
        data = found[name]
    else:
        data = op.ws.outputs(name)
    needs = {c: arms[c].schema_revision if c in arms else None for c in COLORS}
    schema = SchemaOutputs.from_outputs(data.get("schema"))
    return schema_summary(name, schema, needs, live.active_color)


def schema_summary(
    name: str, schema: SchemaOutputs, needs: Mapping[str, str | None], active: str | None
) -> dict:
    """`status --json`'s `schema`: the data stack's applied revisions and current one, what each
    arm's release needs (null: it keeps no data), and whether a rollback to the idle colour is
    schema-safe: its release needs nothing, or a revision that is applied and that no applied
    contract removed the shape of."""
    idle = other(active) if active in COLORS else None
    why = schema.unsafe(needs.get(idle)) if idle else None
    return {
        "dataStack": name,
        "current": schema.current,
        "applied": list(schema.applied),
        "floor": schema.floor,
        "floorContract": schema.floor_contract,
        "arms": dict(needs),
        "rollback": {
            "color": idle,
            "safe": idle is not None and why is None,
            "reason": f"{idle} needs {needs.get(idle)}, {why}" if why else None,
        },
    }


def schema_lines(summary: Mapping) -> list[str]:
    """`schema_summary` as status prints it."""
    applied = ", ".join(summary["applied"]) or "none"
    lines = [
        f"schema (data stack {summary['dataStack']}): current {summary['current'] or 'none'}  "
        f"applied {applied}"
    ]
    for color, need in summary["arms"].items():
        lines.append(f"  {color:<5} needs {need or 'no schema revision (keeps no data)'}")
    rollback = summary["rollback"]
    if rollback["color"] is not None:
        safe = "schema-safe" if rollback["safe"] else f"not schema-safe: {rollback['reason']}"
        lines.append(f"  a rollback to {rollback['color']} is {safe}")
    return lines


def _changes(stack: str, live: LiveOutputs) -> list[str]:
    """The last traffic changes of the stack's evidence, and the last one's judged figures,
    before it and after it."""
    changes = list(live.evidence[-5:])
    lines = [
        f"traffic changes ({stack} stack's evidence):"
        if changes
        else f"traffic changes ({stack} stack's evidence): none recorded"
    ]
    lines += ["  " + describe_record(r) for r in changes]
    if changes:
        last = changes[-1]
        to = Traffic.from_outputs(last.get("to")).active_color or ""
        was = Traffic.from_outputs(last.get("from")).active_color
        for what, figures in (("gate", last.get("smoke")), ("hold", last.get("hold"))):
            for line in judged(figures, to, was if was != to else other(to)):
                lines.append(f"    {what} {line}")
    return lines


def arm_line(op: Operator, color: str, arm: ArmOutputs) -> str:
    """An arm as status shows it: the version it serves (else the one its stack pins), its
    readiness, its endpoint."""
    endpoint = arm.endpoint
    if not endpoint:
        return f"  {color:<5} not deployed (stack {op.edge.arm_stacks[color]})"
    ready = probe.readiness(endpoint, op.edge.health_path)
    said = ready.json().get("version") if ready.status == 200 else None
    # What an arm answers is printed to a terminal: only a version the config could hold.
    serving = said if VERSION.fits(said) else None
    health = "ready" if ready.status == 200 else ready.describe()
    pinned = arm.version
    if said is not None and serving is None:
        note = "  (answers a version that is not one: not shown)"
    else:
        note = f"  (the edge last read {pinned})" if serving and serving != pinned else ""
    return f"  {color:<5} {serving or pinned:<10} {health:<8} {endpoint}{note}"


def _traffic_text(t: Mapping | None) -> str:
    if not t:
        return "nothing"
    traffic = Traffic.from_outputs(t)
    color = traffic.active_color
    return color if traffic.weight(color) == 100 else f"{color} {traffic.weight(color)}%"


def describe_record(r: Mapping) -> str:
    """One line of an evidence record, as `bluegreen status` shows it."""
    hold = r.get("hold") or {}
    verdict = f" ({hold.get('verdict')}: {hold['reason']})" if hold.get("reason") else ""
    versions = " / ".join(f"{c} {v}" for c, v in (r.get("versions") or {}).items())
    return (
        f"{r.get('time')}  {_traffic_text(r.get('from'))} -> {_traffic_text(r.get('to'))}  "
        f"{r.get('outcome')}{verdict}  [{versions}]  by {r.get('who')} at {r.get('where')}"
        f"  commit {r.get('commit')}"
    )
