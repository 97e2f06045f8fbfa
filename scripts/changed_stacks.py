"""Which stacks a change touches, in the order CI must update them: `data` (the database the arms
read) first, then the arms, then `live`.

A stack file (`Pulumi.<stack>.yaml`) touches that stack; the program, its components, platforms,
policy pack or dependencies touch every stack. Used by .github/workflows; tested in
tests/unit/test_changed_stacks.py.

    python scripts/changed_stacks.py BASE_REF [HEAD_REF]          # one stack per line
    python scripts/changed_stacks.py --json BASE_REF [HEAD_REF]   # a JSON list, for a CI matrix
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable

STACK_FILE = re.compile(r"^Pulumi\.([A-Za-z0-9_.-]+)\.yaml$")
PROGRAM = (
    "Pulumi.yaml",
    "__main__.py",
    "requirements.txt",
    "components/",
    "platforms/",
    "bluegreen/",
    "app/",
    "nixos/",
    "policy/",
)
EDGE = "live"
DATA = "data"


def stacks_for(paths: Iterable[str], all_stacks: Iterable[str]) -> list[str]:
    """The stacks `paths` touch: the data stack first, the arms (alphabetically), then the edge,
    one update each."""
    known = set(all_stacks)
    touched: set[str] = set()
    for path in paths:
        match = STACK_FILE.match(path)
        if match:
            if match.group(1) in known or os.path.exists(path):
                touched.add(match.group(1))
        elif path.startswith(PROGRAM):
            touched |= known
    first = [DATA] if DATA in touched else []
    return first + sorted(touched - {EDGE, DATA}) + ([EDGE] if EDGE in touched else [])


def stack_files(root: str = ".") -> list[str]:
    return sorted(m.group(1) for f in os.listdir(root) if (m := STACK_FILE.match(f)))


def changed_paths(base: str, head: str = "HEAD") -> list[str]:
    out = subprocess.run(
        ["git", "diff", "--name-only", f"{base}...{head}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in out.stdout.splitlines() if line]


if __name__ == "__main__":
    args = sys.argv[1:]
    as_json = args[:1] == ["--json"]
    args = args[1:] if as_json else args
    if len(args) not in (1, 2):
        sys.exit(__doc__)
    stacks = stacks_for(changed_paths(*args), stack_files())
    print(json.dumps(stacks) if as_json else "\n".join(stacks))
