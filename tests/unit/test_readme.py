"""Every command block in the README runs as written in a non-interactive shell (CI, a script,
an operator's ssh session without a terminal)."""

from __future__ import annotations

import re

from tests.readme import sh_blocks

CHANGES = re.compile(r"\bpulumi (up|destroy|refresh|cancel)\b([^&;|#\n]*)")


def test_every_pulumi_command_that_changes_a_stack_says_yes():
    asked = []
    for block in sh_blocks():
        for verb, rest in CHANGES.findall(block):
            if "--yes" not in rest and "--preview-only" not in rest:
                asked.append(f"pulumi {verb}{rest}".strip())
    assert not asked, f"these stop at a prompt without a terminal: {asked}"


def test_the_blocks_are_found():
    assert len(sh_blocks()) >= 4  # a block the pattern missed would be a check that saw nothing
