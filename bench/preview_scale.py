"""How the live stack's preview and the flip grow with the nodes per arm, on the nixos platform.

For each size N (default 1, 10 and 100 nodes per arm) the bench builds a throwaway project
(tests/support/sandbox.py, with its own state backend; nixos/ copied in, which the sandbox does
not copy) whose three stacks use `bluegreen:platform: nixos`, and deploys them for real:

- the arm stacks with `pulumi up -s blue` and `-s green` (policy pack on, as the tooling runs it),
  so that their outputs (the `nodes` list the live stack reads through StackReference) and their
  state are what N real hosts give: N `bluegreen:nixos:Host` resources each, every one deployed
  with the platform's two `ssh` calls and confirmed by its probe;
- the live stack with `pulumi up -s live` (the edge on a node of its own).

The hosts are loopback addresses (127.20+k.1.i for blue, .2.i for green, .3.1 for the edge), all
served by one real sshd, with a stand-in for `nixos-rebuild` that starts the reference app on
each arm node and nginx on the edge node: see bench/nixos_hosts.py for what is real and what
stands in. Nothing is mocked inside `pulumi` or the program.

Then, in rounds that visit the sizes in a rotating order (so load from other work on the machine
hits each size alike), each size runs: a no-op `pulumi preview -s live`; the pointer moved and a
flip `pulumi preview -s live` (the policy pack smoke-tests the target arm's first node); and the
flip `pulumi up -s live` (the edge host gets its new file over ssh and is confirmed through
nginx). Figures are the wall time of the `pulumi` process (cutover.workspace.Workspace, with the
policy pack). After each flip the bench checks through the edge that the new colour answers. The
breakdown of the no-op preview by phase uses bench/event_trace.py (the event-log tail).

    .venv/bin/python -m bench.preview_scale [--nodes 1,10,100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field

from bench.event_trace import PHASES, Trace, TracedWorkspace, retry_refused
from bench.nixos_hosts import LoopbackHosts, switch_seconds
from bluegreen import probe
from cutover.workspace import ROOT, timed
from tests.support.sandbox import LocalProject, free_ports, make_project


@dataclass
class Size:
    nodes: int
    project: LocalProject
    ws: TracedWorkspace
    edge_url: str
    edge_node: str
    color: str = "blue"
    arm_up: list[float] = field(default_factory=list)
    live_up: float = math.nan
    state_kb: float = math.nan
    noop: list[Trace] = field(default_factory=list)
    flip_preview: list[Trace] = field(default_factory=list)
    flip_up: list[Trace] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    switch_s: list[float] = field(default_factory=list)
    """The stand-in nixos-rebuild on the edge node, one per flip up."""


def _addresses(k: int, role: int, n: int) -> list[str]:
    return [f"127.{20 + k}.{role}.{i + 1}" for i in range(n)]


def _setup(tmp: str, k: int, n: int, hosts: LoopbackHosts) -> Size:
    project = make_project(os.path.join(tmp, f"n{n}"), policy=True)
    shutil.copytree(os.path.join(ROOT, "nixos"), os.path.join(project.dir, "nixos"))
    app_port, edge_port = free_ports(2)
    ssh = {"platform": "nixos", "sshUser": hosts.user, "sshPort": hosts.ssh_port}
    for role, (color, version) in enumerate((("blue", "v1"), ("green", "v2")), start=1):
        nodes = json.dumps(_addresses(k, role, n))
        project.write_stack(
            color,
            {"role": "arm", "color": color, "version": version, "nodes": nodes, "appPort": app_port}
            | ssh,
        )
    edge = _addresses(k, 3, 1)[0]
    project.write_stack(
        "live",
        {"role": "edge", "activeColor": "blue", "edgeNode": edge, "edgePort": edge_port} | ssh,
    )
    for stack in ("blue", "green", "live"):
        project.ws.config_set_secret(stack, "bluegreen:sshKey", hosts.key)
    ws = TracedWorkspace(project_dir=project.dir, env=project.ws.env, policy_pack="policy")
    return Size(
        nodes=n, project=project, ws=ws, edge_url=f"http://{edge}:{edge_port}/", edge_node=edge
    )


def _deploy(size: Size) -> None:
    for stack in ("blue", "green"):
        size.arm_up.append(timed(size.ws.up, stack)[1])
    exported = size.ws.run("stack", "export", "-s", "blue").stdout
    size.state_kb = len(exported.encode()) / 1024
    size.live_up = timed(size.ws.up, "live")[1]
    _check(size)


def _check(size: Size) -> None:
    seen = [probe.request(size.edge_url).color for _ in range(5)]
    if set(seen) != {size.color}:
        raise RuntimeError(f"N={size.nodes}: the edge answered {seen}, expected {size.color}")


def _round(size: Size) -> None:
    ws = size.ws
    result = ws.preview("live")
    if result.outcome.steps:
        raise RuntimeError(f"N={size.nodes}: the no-op preview has steps {result.outcome.steps}")
    size.noop.append(ws.last)
    size.color = "green" if size.color == "blue" else "blue"
    ws.config_set("live", "bluegreen:activeColor", size.color)
    retry_refused(lambda: ws.preview("live"), size.refusals, f"N={size.nodes} preview")
    size.flip_preview.append(ws.last)
    retry_refused(lambda: ws.up("live"), size.refusals, f"N={size.nodes} up")
    size.flip_up.append(ws.last)
    _check(size)


def _median(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else math.nan


def _spans(trace: Trace, begin: str, end: str) -> list[float]:
    """Seconds between the program's debug messages starting with `begin` and the `end` that
    follows each (in order: the SDK logs them as it sends and completes each call)."""
    starts: list[float] = []
    spans: list[float] = []
    for t, ev in trace.events:
        msg = (ev.get("diagnosticEvent") or {}).get("message", "")
        if msg.startswith(begin):
            starts.append(t)
        elif msg.startswith(end) and starts:
            spans.append(t - starts.pop(0))
    return spans


READS = (
    (
        " invoke (_require_stack)",
        "Invoking function: tok=pulumi:pulumi:readStackOutputs",
        "Invoking function completed: tok=pulumi:pulumi:readStackOutputs",
    ),
    (
        " StackReference read",
        "reading resource: ty=pulumi:pulumi:StackReference",
        "resource read successful: ty=pulumi:pulumi:StackReference",
    ),
)


def _secs(traces: list[Trace]) -> str:
    xs = [t.seconds for t in traces]
    return f"{_median(xs):6.2f} ({min(xs):.2f}-{max(xs):.2f})" if xs else "  n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", default="1,10,100", help="nodes per arm, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    counts = [int(x) for x in args.nodes.split(",")]
    loads = [os.getloadavg()[0]]
    sizes: list[Size] = []
    with tempfile.TemporaryDirectory() as tmp:
        addresses = [
            a
            for k, n in enumerate(counts)
            for role, m in ((1, n), (2, n), (3, 1))
            for a in _addresses(k, role, m)
        ]
        hosts = LoopbackHosts(os.path.join(tmp, "hosts"), addresses)
        left: list[str] = []
        try:
            hosts.start()
            for k, n in enumerate(counts):
                sizes.append(_setup(tmp, k, n, hosts))
                start = time.perf_counter()
                _deploy(sizes[-1])
                print(
                    f"deployed N={n}: blue {sizes[-1].arm_up[0]:.1f} s, green "
                    f"{sizes[-1].arm_up[1]:.1f} s, live {sizes[-1].live_up:.1f} s "
                    f"({time.perf_counter() - start:.0f} s with checks)",
                    flush=True,
                )
            loads.append(os.getloadavg()[0])
            for r in range(args.rounds):
                order = sizes[r % len(sizes) :] + sizes[: r % len(sizes)]
                for size in order:
                    _round(size)
                loads.append(os.getloadavg()[0])
                print(
                    f"round {r + 1}: "
                    + "; ".join(
                        f"N={s.nodes} preview {s.noop[-1].seconds:.2f} / "
                        f"{s.flip_preview[-1].seconds:.2f} s, up {s.flip_up[-1].seconds:.2f} s"
                        for s in sizes
                    )
                    + f"; load {loads[-1]:.2f}",
                    flush=True,
                )
            for s in sizes:  # the first switch of the edge node was its first deploy
                s.switch_s = switch_seconds(hosts.root, s.edge_node)[1:]
        finally:
            left = hosts.stop()

    print(
        f"\nlive stack on the nixos platform, policy pack on: {args.rounds} rounds, sizes "
        f"interleaved; 1-min load average {min(loads):.2f}-{max(loads):.2f} on "
        f"{os.cpu_count()} cores; median (min-max) s"
    )
    print(
        f"{'nodes/arm':>9} | {'arm up s':>8} | {'arm state':>9} | {'live preview, no-op':>19} | "
        f"{'live preview, flip':>18} | {'flip up (live)':>17} | {'of which switch':>15}"
    )
    for s in sizes:
        print(
            f"{s.nodes:>9} | {s.arm_up[0]:8.1f} | {s.state_kb:6.0f} KB | {_secs(s.noop):>19} | "
            f"{_secs(s.flip_preview):>18} | {_secs(s.flip_up):>17} | {_median(s.switch_s):15.2f}"
        )
    print(
        "  (arm up: the first `pulumi up -s blue`; arm state: `pulumi stack export -s blue`; of "
        "which switch: the stand-in nixos-rebuild on the edge node, over ssh, in each flip up)"
    )
    print("\nby phase (medians, s; see bench/flip_cost.py; the switch is the edge node's Host)")
    print(
        f"  {'':<24}{'live preview, no-op':>{9 * len(sizes)}}{'flip up (live)':>{9 * len(sizes)}}"
    )
    print(f"  {'phase':<24}" + "".join(f"{f'N={s.nodes}':>9}" for s in sizes) * 2)
    per = {
        (s.nodes, kind): [t.phases(":Host") for t in getattr(s, kind)]
        for s in sizes
        for kind in ("noop", "flip_up")
    }
    for name in PHASES:
        row = "".join(
            f"{_median([p[name] for p in per[(s.nodes, kind)]]):9.3f}"
            for kind in ("noop", "flip_up")
            for s in sizes
        )
        print(f"  {name:<24}{row}")
    print("  arm stack reads, per arm stack (they overlap in part; no-op preview):")
    for label, begin, end in READS:
        row = "".join(
            f"{_median([x for t in s.noop for x in _spans(t, begin, end)]):9.3f}" for s in sizes
        )
        print(f"  {label:<24}{row}")
    for s in sizes:
        for refusal in s.refusals:
            print(f"refused by the gate and retried (not timed): {refusal}")
    if left:
        print(f"warning: left running: {left}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
