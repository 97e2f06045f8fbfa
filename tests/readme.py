"""The README's command blocks, as tests run them: the text a user copies is the text tested."""

from __future__ import annotations

import os
import re
import subprocess

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def sh_blocks() -> list[str]:
    with open(README) as f:
        return re.findall(r"^```sh\n(.*?)^```", f.read(), re.S | re.M)


def block_after(heading: str) -> str:
    """The first ```sh block after `heading`."""
    with open(README) as f:
        text = f.read()
    start = text.index(heading)
    return re.search(r"^```sh\n(.*?)^```", text[start:], re.S | re.M).group(1)


def run_block(block: str, cwd: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a block as a user pastes it into bash without a terminal, stopping at the first error."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
