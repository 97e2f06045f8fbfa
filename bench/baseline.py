"""`--baseline REF` for the benches: the same measurement against the project as it was at a git
ref, next to the current working tree's.

The ref is checked out with `git worktree add --detach` into a temporary directory, removed again
however the bench ends; the sandbox copies the project from there (tests/support/sandbox.py
`make_project(root=...)`) while the venv, the Pulumi CLI and the bench itself (the load generator
too) stay the current tree's. The sides run one after the other, never at once: on a 2-core
machine two sandboxes would measure each other.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import TypeVar

from cutover.workspace import ROOT

CURRENT = "working tree"
T = TypeVar("T")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", ROOT, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[str]:
    """A detached worktree of `ref`, removed (`git worktree remove --force`) when the block ends."""
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="bluegreen-baseline-") as tmp:
        tree = os.path.join(tmp, "src")
        _git("worktree", "add", "--detach", tree, commit)
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "-C", ROOT, "worktree", "remove", "--force", tree], capture_output=True
            )
            subprocess.run(["git", "-C", ROOT, "worktree", "prune"], capture_output=True)


def measure(ref: str | None, run: Callable[[str], T]) -> list[tuple[str, T]]:
    """`run(source root)` for each side, one after the other: the baseline `ref` first, if given
    (labelled "before (REF)"), then the current tree ("after (working tree)")."""
    measured: list[tuple[str, T]] = []
    if ref:
        with checkout(ref) as tree:
            print(f"measuring before ({ref}) ...", file=sys.stderr, flush=True)
            measured.append((f"before ({ref})", run(tree)))
    label = f"after ({CURRENT})" if ref else CURRENT
    print(f"measuring {label} ...", file=sys.stderr, flush=True)
    measured.append((label, run(ROOT)))
    return measured
