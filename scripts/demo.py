"""The demo behind `scripts/demo`: deploy both arms and the edge, flip, roll back, print timings."""

from __future__ import annotations

import os
import sys
import threading
import time

from bluegreen import probe
from cutover.workspace import PulumiError, Workspace, timed
from platforms.dns import lookup

ws = Workspace(echo=True, policy_pack="policy")
rows: list[tuple[str, str]] = []


def step(label: str, fn, *args):
    result, seconds = timed(fn, *args)
    rows.append((label, f"{seconds:6.2f} s"))
    return result


def sample(url: str, n: int = 20) -> str:
    answers = [probe.request(url) for _ in range(n)]
    seen: dict[str, int] = {}
    for a in answers:
        key = f"{a.color} {a.version}" if a.color else f"failed ({a.error or a.status})"
        seen[key] = seen.get(key, 0) + 1
    return ", ".join(f"{count} x {key}" for key, count in seen.items())


def dns_answers() -> str:
    zone = ws.config_get("live", "bluegreen:dnsZone")
    if not zone or ws.config_get("live", "bluegreen:dnsProvider") in (None, "none"):
        return ""
    # A key the stack leaves out reads as Pulumi.yaml's default, as the engine gives it.
    server = ws.config_get("live", "bluegreen:dnsServer")
    app = ws.config_get("live", "bluegreen:appName")
    parts = []
    for name in (f"{app}.{zone}", f"blue.{zone}", f"green.{zone}"):
        values, ttl = lookup(name, server)
        parts.append(f"{name} -> {', '.join(values) or 'nothing'} (TTL {ttl})")
    return f"DNS at {server}: " + "; ".join(parts)


def switch(url: str, target: str) -> tuple[float, float | None]:
    """Set the pointer, `pulumi up -s live`; return its wall time and when `target` answered."""
    first: list[float] = []
    stop = threading.Event()
    start = time.perf_counter()

    def watch() -> None:
        while not stop.is_set():
            if probe.request(url, timeout=1).color == target:
                first.append(time.perf_counter() - start)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ws.config_set("live", "bluegreen:activeColor", target)
    ws.up("live")
    wall = time.perf_counter() - start
    watcher.join(timeout=5)
    stop.set()
    return wall, (first[0] if first else None)


def main() -> int:
    boot = float(os.environ.get("BLUEGREEN_BOOTSTRAP_MS") or 0) / 1000
    rows.append(("bootstrap (venv, nginx, Pulumi CLI)", f"{boot:6.2f} s"))
    for stack in ("blue", "green", "live"):
        ws.ensure_stack(stack)
    try:
        step("pulumi up -s blue   (v1)", ws.up, "blue")
        step("pulumi up -s green  (v2)", ws.up, "green")
        if ws.config_get("live", "bluegreen:activeColor") != "blue":
            ws.config_set("live", "bluegreen:activeColor", "blue")
        step("pulumi up -s live   (blue active)", ws.up, "live")
    except PulumiError as err:
        print(err, file=sys.stderr)
        return 1
    url = ws.outputs("live")["url"]
    print(f"\nthrough the edge {url}: {sample(url)}")
    print(dns_answers())

    for target, label in (
        ("green", "flip     blue -> green"),
        ("blue", "rollback green -> blue"),
    ):
        try:
            wall, first = switch(url, target)
        except PulumiError as err:
            print(err, file=sys.stderr)
            return 1
        rows.append((f"{label}: pulumi up -s live", f"{wall:6.2f} s"))
        rows.append(
            (
                f"{label}: first {target} answer after",
                f"{first:6.2f} s" if first else "  never",
            )
        )
        print(f"after `pulumi up -s live` ({target}): {sample(url)}")

    print("\nwhat happened")
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    print(
        f"\nThe stacks keep running: edge {url}, arms "
        f"{ws.outputs('blue')['endpoint']} and {ws.outputs('green')['endpoint']}."
    )
    print(
        "Flip yourself: source scripts/env; "
        "pulumi config set -s live bluegreen:activeColor green && "
        "pulumi up -s live --policy-pack policy --policy-pack-config policy/config.json"
    )
    print("Tear down:     scripts/teardown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
