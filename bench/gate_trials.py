"""How often the gate refuses a green, by how much worse it really is, on an idle and a busy box.

Many trials of the real gate: the policy pack's own `smoke_test`, called as the engine calls it,
with the pack's shipped config (policy/config.json), against two real reference services on
loopback (app/server.py, each its own process). Four greens against one blue:

    identical   the same service                      should pass
    slower      20% slower at the median               should be refused
    errors 2%   2% of requests answered 500, at random  should be refused
    errors 0.1% 0.1% answered 500                       should pass

"20% slower" is measured, not assumed: before its trials, blue's median is taken on the machine
as it is then (idle or busy), and green gets that much more work (--delay-ms), so that its median
is 1.2 x blue's; the medians the trials saw are printed beside it. Every arm does 3 ms of work a
request (--delay-ms), so that a fifth of its median is above the gate's 0.5 ms floor. "busy" is
four processes spinning on the CPU for the whole condition.

Printed per condition and scenario: trials refused, the median requests per arm the gate took
and the median seconds it needed to decide, with the targets of issue 20 (identical refused at
most 1 in 100 under load; slower and 2% refused at least 95 in 100; 0.1% passed at least 95 in
100). With `--baseline REF` (5c10c4d: the p95 gate) the same trials run first with the pack as
it was at REF (bench/baseline.py).

    .venv/bin/python -m bench.gate_trials [--trials 100] [--baseline 5c10c4d]
        [--conditions idle,busy]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

from bench import baseline
from bluegreen import probe
from cutover.workspace import ROOT
from tests.support.busy import busy_loops
from tests.support.sandbox import free_ports

APP = os.path.join(ROOT, "app", "server.py")
WORK_MS = 3.0
SCENARIOS = {
    "identical": {},
    "slower": None,  # calibrated: 20% more at the median than blue
    "errors 2%": {"error-rate": 0.02},
    "errors 0.1%": {"error-rate": 0.001},
}
WANTED = {  # (should be refused, at least this many per 100 as wanted)
    "identical": (False, 99),
    "slower": (True, 95),
    "errors 2%": (True, 95),
    "errors 0.1%": (False, 95),
}


@contextlib.contextmanager
def arm(color: str, version: str, **flags) -> Iterator[str]:
    [port] = free_ports(1)
    args = [f"--{k}={v}" for k, v in {"delay-ms": WORK_MS, **flags}.items()]
    proc = subprocess.Popen(
        [sys.executable, APP, f"--color={color}", f"--version={version}", f"--port={port}", *args],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        probe.wait_until(url + "/healthz/ready", lambda a: a.status is not None, timeout=10)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def median_ms(url: str, n: int = 1000) -> float:
    """The median of `n` requests to `url` on one kept-alive connection, as the gate sends them."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    took = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            conn.request("GET", "/", headers={"X-Bluegreen-Probe": "bench"})
            conn.getresponse().read()
            took.append((time.perf_counter() - start) * 1000)
    finally:
        conn.close()
    return statistics.median(took)


# --- one side's trials, in a process of its own: that side's pack, by PYTHONPATH -------------


def drive(blue: str, green: str, trials: int, config_path: str) -> None:
    """Run the pack's smoke_test `trials` times, one JSON line each (refused, requests, seconds,
    medians), exactly as the engine calls it: its config, an Edge moving traffic to green."""
    from bluegreen_policy import rules, smoke, state
    from pulumi_policy import PolicyResourceOptions, ResourceValidationArgs

    with open(config_path) as f:
        config = json.load(f)[rules.settings.SMOKE]
    config = {
        k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
        for k, v in config.items()
    }
    state.outputs = lambda stack: {"activeColor": "blue", "weights": {"blue": 100, "green": 0}}
    props = {
        "stack": "live",
        "activeColor": "green",
        "weights": {"blue": 0.0, "green": 100.0},
        "arms": {
            "blue": {"endpoint": blue, "version": "v1"},
            "green": {"endpoint": green, "version": "v2"},
        },
        "healthPath": "/healthz/ready",
    }
    opts = PolicyResourceOptions(False, [], None, [], None, [], parent=None)
    print(json.dumps({"pack": os.path.dirname(rules.__file__)}), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        report_path = os.path.join(tmp, "smoke.json")
        os.environ[smoke.REPORT_ENV] = report_path
        for _ in range(trials):
            said: list[str] = []
            args = ResourceValidationArgs(
                rules.EDGE,
                props,
                "urn:pulumi:live::bluegreen::x::live",
                "live",
                opts,
                None,
                config,
            )
            start = time.perf_counter()
            rules.smoke_test(args, lambda message, *_, said=said: said.append(message))
            seconds = time.perf_counter() - start
            with open(report_path) as f:
                report = json.load(f)
            print(
                json.dumps(
                    {
                        "refused": bool(said),
                        "message": said[0] if said else None,
                        "requests": report["samples"],
                        "seconds": seconds,
                        "blue": report["blue"]["p50Ms"],
                        "green": report["green"]["p50Ms"],
                    }
                ),
                flush=True,
            )


@dataclass
class Row:
    condition: str
    scenario: str
    trials: list[dict]

    @property
    def refused(self) -> int:
        return sum(t["refused"] for t in self.trials)

    def median(self, key: str) -> float:
        return statistics.median(t[key] for t in self.trials)


def run_side(root: str, trials: int, conditions: list[str], scenarios: list[str]) -> list[Row]:
    rows = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.join(root, "policy"), ROOT])}
    for condition in conditions:
        with busy_loops(4 if condition == "busy" else 0):
            time.sleep(1)
            for name in scenarios:
                with arm("blue", "v1") as blue:
                    flags = SCENARIOS[name]
                    if flags is None:
                        flags = {"delay-ms": round(WORK_MS + 0.2 * median_ms(blue), 3)}
                    with arm("green", "v2", **flags) as green:
                        print(f"  {condition} {name}: {trials} trials", file=sys.stderr, flush=True)
                        out = subprocess.run(
                            [
                                sys.executable,
                                "-m",
                                "bench.gate_trials",
                                "--drive",
                                blue,
                                green,
                                str(trials),
                                os.path.join(root, "policy", "config.json"),
                            ],
                            cwd=ROOT,
                            env=env,
                            capture_output=True,
                            text=True,
                            check=False,
                        )
                        if out.returncode != 0:
                            raise SystemExit(f"the trials failed:\n{out.stderr[-3000:]}")
                        lines = [json.loads(x) for x in out.stdout.splitlines()]
                        pack = lines[0]["pack"]
                        if not pack.startswith(os.path.join(root, "policy")):
                            raise SystemExit(f"the trials ran the pack at {pack}, not {root}'s")
                        rows.append(Row(condition, name, lines[1:]))
    return rows


def show(label: str, rows: list[Row]) -> None:
    print(f"\n{label}")
    print(
        f"  {'machine':<6} {'green':<12} {'refused':>9} {'wanted':>14} {'requests':>9} "
        f"{'seconds':>8} {'green/blue p50':>15}"
    )
    for r in rows:
        n = len(r.trials)
        refuse, share = WANTED[r.scenario]
        want = f"{'>=' if refuse else '<='} {share if refuse else 100 - share}/100"
        ratio = r.median("green") / r.median("blue") if r.median("blue") else float("nan")
        ok = (r.refused * 100 >= share * n) if refuse else ((n - r.refused) * 100 >= share * n)
        print(
            f"  {r.condition:<6} {r.scenario:<12} {r.refused:>5}/{n:<3} {want:>14} "
            f"{r.median('requests'):>9.0f} {r.median('seconds'):>8.2f} {ratio:>15.2f}"
            f"{'' if ok else '  (misses)'}"
        )
    refusals = [
        t["message"]
        for r in rows
        if r.scenario in ("identical", "errors 0.1%")
        for t in r.trials
        if t["refused"]
    ][:3]
    for message in refusals:
        print(f"  a healthy green refused: {message[:300]}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--drive"]:
        blue, green, trials, config = argv[1:5]
        drive(blue, green, int(trials), config)
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--baseline", help="also measure the pack at this git ref first (5c10c4d)")
    p.add_argument("--conditions", default="idle,busy")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = p.parse_args(argv)
    conditions = args.conditions.split(",")
    scenarios = args.scenarios.split(",")
    measured = baseline.measure(
        args.baseline, lambda root: run_side(root, args.trials, conditions, scenarios)
    )
    for label, rows in measured:
        show(label, rows)


if __name__ == "__main__":
    main()
