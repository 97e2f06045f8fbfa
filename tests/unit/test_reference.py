"""docs/reference/ is generated from Pulumi.yaml and the command's argument parser
(scripts/reference.py): it must say what they say, and go stale the moment either changes."""

from __future__ import annotations

import re
from pathlib import Path

from cutover.cli import parser
from scripts import reference

DOCS = Path(reference.DOCS)
PULUMI_YAML = (Path(reference.ROOT) / "Pulumi.yaml").read_text()


def test_the_references_are_what_their_sources_say():
    for name, text in reference.generated().items():
        assert (DOCS / name).read_text() == text, (
            f"docs/reference/{name} is stale: run .venv/bin/python -m scripts.reference"
        )


def test_a_changed_default_or_a_new_key_makes_the_config_reference_stale():
    committed = (DOCS / "config.md").read_text()
    changed = PULUMI_YAML.replace("    default: 18080\n", "    default: 18081\n", 1)
    assert changed != PULUMI_YAML
    assert "`18081`" in reference.config_reference(changed)
    assert reference.config_reference(changed) != committed
    added = PULUMI_YAML.replace(
        "config:\n",
        "config:\n  # bluegreen:newKey (no default): Edge. A key that is\n  #   new.\n",
        1,
    )
    assert "| `bluegreen:newKey` |  | (none) | Edge. A key that is new. |" in (
        reference.config_reference(added)
    )


def test_every_key_pulumi_yaml_declares_or_lists_is_in_the_config_reference():
    text = (DOCS / "config.md").read_text()
    declared = set(re.findall(r"^  (bluegreen:\w+):", PULUMI_YAML, re.MULTILINE))
    listed = {k for k, _ in reference._undefaulted(PULUMI_YAML)}
    assert declared and listed
    for key in declared | listed:
        assert f"| `{key}` |" in text


def test_a_new_flag_makes_the_command_reference_stale():
    committed = (DOCS / "commands.md").read_text()
    cli = parser()
    assert reference.command_reference(cli) == committed
    for name, sub in reference._commands(cli):
        if name == "rollback":
            sub.add_argument("--dry-run", action="store_true", help="say what would happen")
    changed = reference.command_reference(cli)
    assert "--dry-run" in changed and changed != committed
