"""What other stacks (and this stack's last update) say, for the inputs the policy pack judges.

Policies see resource inputs, not stack outputs, so the colour that is live now, the weights it
serves with and the version an arm serves now are read here and passed into the components.
The first deploy of an arm happens before the live stack exists; a StackReference to a missing
stack fails the whole update, so these reads go through `pulumi stack output` instead, which can
say "no such stack" without failing anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pulumi


class StackReadError(RuntimeError):
    pass


def stack_outputs(stack: str) -> dict | None:
    """The last outputs of `stack` (org/project/name or name); None if there is no such stack."""
    pulumi_bin = shutil.which("pulumi")
    if pulumi_bin is None:
        raise StackReadError("the pulumi CLI is not on PATH: source scripts/env")
    result = subprocess.run(
        [pulumi_bin, "stack", "output", "--stack", stack, "--json", "--non-interactive"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        if "no stack named" in result.stderr:
            return None
        raise StackReadError(f"reading stack {stack} failed: {result.stderr.strip()}")
    outputs = json.loads(result.stdout or "{}")
    return outputs or None


def qualified(name: str) -> str:
    return name if "/" in name else f"{pulumi.get_organization()}/{pulumi.get_project()}/{name}"


@dataclass(frozen=True)
class Observed:
    """The world as this update starts: None where a stack does not exist yet."""

    live_color: str | None = None
    """The colour the edge serves now (live stack's last activeColor)."""
    live_weights: dict | None = None
    """The weights the edge serves with now."""
    serving_version: str | None = None
    """Arm only: the version this arm serves now (its own last update)."""


def observe(live_stack: str, own_stack: str, role: str) -> Observed:
    """Read the live stack and this stack's last outputs, in parallel (each read is a CLI call)."""
    if role == "edge":
        own = stack_outputs(qualified(own_stack)) or {}
        return Observed(live_color=own.get("activeColor"), live_weights=own.get("weights"))
    with ThreadPoolExecutor(2) as pool:
        live_f = pool.submit(stack_outputs, qualified(live_stack))
        own_f = pool.submit(stack_outputs, qualified(own_stack))
        live, own = live_f.result() or {}, own_f.result() or {}
    return Observed(
        live_color=live.get("activeColor"),
        live_weights=live.get("weights"),
        serving_version=own.get("version"),
    )


def recent_flips(project_dir: str, n: int = 5) -> list[dict]:
    """The last `n` records of the flip log (scripts/flip and scripts/rollback append to it)."""
    try:
        with open(os.path.join(project_dir, ".bluegreen", "flips.jsonl")) as f:
            lines = f.readlines()[-n:]
    except OSError:
        return []
    return [json.loads(line) for line in lines if line.strip()]
