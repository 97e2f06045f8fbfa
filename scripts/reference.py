"""The references in docs/reference/, generated from their one source each:

- `config.md` from `Pulumi.yaml`: every `bluegreen:` key, its type, default and description, and
  the keys without a default, which Pulumi.yaml lists in comments (Pulumi would otherwise require
  a value on every stack);
- `commands.md` from the `bluegreen` command's argument parser (cutover/cli.py `parser`).

    .venv/bin/python -m scripts.reference           # rewrite them
    .venv/bin/python -m scripts.reference --check   # exit 1 naming the stale one

tests/unit/test_reference.py fails when either is stale, so a key or a flag cannot change
without its reference.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "reference")
WIDTH = "100"
"""argparse wraps its help to the terminal's width: fixed, so the text is the same everywhere."""

_UNDEFAULTED = re.compile(r"^  # (bluegreen:\w+) \(no default\): (.*)$")
_CONTINUED = re.compile(r"^  #   (.*)$")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _undefaulted(text: str) -> Iterator[tuple[str, str]]:
    """(key, description) of the keys Pulumi.yaml lists in comments."""
    key, words = None, []
    for line in text.splitlines():
        if found := _UNDEFAULTED.match(line):
            if key:
                yield key, " ".join(words)
            key, words = found.group(1), [found.group(2)]
        elif key and (more := _CONTINUED.match(line)):
            words.append(more.group(1))
        elif key:
            yield key, " ".join(words)
            key, words = None, []
    if key:
        yield key, " ".join(words)


def _default(spec: dict) -> str:
    if "default" not in spec:
        return "(none)"
    value = spec["default"]
    if isinstance(value, bool):
        value = str(value).lower()
    return f"`{_cell(json.dumps(value) if value == '' else value)}`"


def config_reference(pulumi_yaml: str) -> str:
    declared = (yaml.safe_load(pulumi_yaml) or {}).get("config") or {}
    rows = []
    for key, spec in declared.items():
        spec = spec if isinstance(spec, dict) else {"default": spec}
        rows.append((key, spec.get("type", ""), _default(spec), spec.get("description", "")))
    rows += [(key, "", "(none)", about) for key, about in _undefaulted(pulumi_yaml)]
    lines = [
        "# Configuration reference",
        "",
        "Generated from `Pulumi.yaml` by `python -m scripts.reference`; do not edit by hand.",
        "Each description starts with the stacks it applies to (`Edge` is the live stack, `Arm`",
        "the blue and green stacks). Keys without a default are set on the stacks they apply to;",
        "one a stack leaves out is not set.",
        "",
        "| key | type | default | description |",
        "| --- | --- | --- | --- |",
    ]
    for key, kind, default, about in sorted(rows):
        lines.append(f"| `{key}` | {_cell(kind)} | {default} | {_cell(about)} |")
    return "\n".join(lines) + "\n"


def _commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every subcommand, depth first (`queue`, then `queue retry`)."""
    # argparse keeps its subcommands in a private action; it has no public way to list them.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + name, sub
                yield from _commands(sub, prefix + name + " ")


def command_reference(parser: argparse.ArgumentParser) -> str:
    was = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return _command_reference(parser)
    finally:
        if was is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = was


def _command_reference(parser: argparse.ArgumentParser) -> str:
    lines = [
        "# Command reference",
        "",
        "Generated from the `bluegreen` command's argument parser (`cutover/cli.py`) by",
        "`python -m scripts.reference`; do not edit by hand.",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
    ]
    for name, sub in _commands(parser):
        lines += ["", f"## bluegreen {name}", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(lines) + "\n"


def generated() -> dict[str, str]:
    from cutover.cli import parser

    with open(os.path.join(ROOT, "Pulumi.yaml")) as f:
        config = config_reference(f.read())
    return {"config.md": config, "commands.md": command_reference(parser())}


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description="Generate docs/reference/ from its sources.")
    cli.add_argument("--check", action="store_true", help="only say whether a file is stale")
    args = cli.parse_args(argv)
    stale = []
    for name, text in generated().items():
        path = os.path.join(DOCS, name)
        try:
            with open(path) as f:
                current = f.read()
        except OSError:
            current = None
        if current == text:
            continue
        stale.append(f"docs/reference/{name}")
        if not args.check:
            os.makedirs(DOCS, exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
    if stale and args.check:
        print(f"stale: {', '.join(stale)}: run python -m scripts.reference", file=sys.stderr)
        return 1
    for name in stale:
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
