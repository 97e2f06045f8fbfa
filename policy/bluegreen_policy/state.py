"""What the stacks serve now, read by the policies themselves.

A policy sees a resource's new inputs only. What it must compare them with (the colour and weights
the edge serves now, the version an arm serves now, the colour that is live) is the last update's
outputs of the stacks, read here. Kept out of the resources' inputs on purpose: an input that
records "what was there before" differs on every run after a change, so a preview with nothing
to do would never say "no changes".

The read goes through the `pulumi` CLI of the update that runs this pack, with its environment
(backend, passphrase), so it sees the same state the engine does. A stack that does not exist
yet, or was never deployed, reads as None; a read that fails for any other reason raises, and
the policy that needed it refuses rather than guess.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any


class StateReadError(RuntimeError):
    pass


def _cli_outputs(stack: str) -> dict[str, Any] | None:
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise StateReadError("the pulumi CLI is not on PATH")
    result = subprocess.run(
        [pulumi, "stack", "output", "--stack", stack, "--json", "--non-interactive"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        if "no stack named" in result.stderr:
            return None
        raise StateReadError(f"reading stack {stack} failed: {result.stderr.strip()}")
    outputs = json.loads(result.stdout or "{}")
    return outputs or None


_cache: dict[str, dict[str, Any] | None] = {}


def outputs(stack: str) -> dict[str, Any] | None:
    """The last outputs of `stack` (org/project/name); None if it has none. Read once per run:
    several policies ask, and the state does not change while this pack runs."""
    if stack not in _cache:
        _cache[stack] = _cli_outputs(stack)
    return _cache[stack]
