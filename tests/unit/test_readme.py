"""The README and docs/ as a user reads them: every command block runs as written in a
non-interactive shell (CI, a script, an operator's ssh session without a terminal) or says why no
test runs it, and every relative link leads somewhere."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.docs import (
    ROOT,
    RUN,
    anchors,
    block_after,
    broken_links,
    docs,
    read,
    sh_blocks,
    slug,
)

CHANGES = re.compile(r"\bpulumi (up|destroy|refresh|cancel)\b([^&;|#\n]*)")


def test_every_pulumi_command_that_changes_a_stack_says_yes():
    asked = []
    for block in sh_blocks():
        for verb, rest in CHANGES.findall(block.text):
            if "--yes" not in rest and "--preview-only" not in rest:
                asked.append(f"{block.doc}:{block.line}: pulumi {verb}{rest}".strip())
    assert not asked, f"these stop at a prompt without a terminal: {asked}"


def test_the_blocks_are_found():
    blocks = sh_blocks()
    # A block the scanner missed would be a check that saw nothing.
    assert len(blocks) >= 8
    assert {b.doc for b in blocks} >= {"README.md", "docs/operating.md"}
    indented = [b for b in blocks if "bluegreen:webhookUrl" in b.text]
    assert indented, "the webhook block sits in a list, indented: it must be found too"


def test_every_sh_block_is_run_by_a_test_or_says_why_not():
    unexplained = [
        f"{b.doc}:{b.line} (under {b.heading!r})" for b in sh_blocks() if not b.run and not b.note
    ]
    assert not unexplained, (
        "no test runs these blocks: run one from a test with tests.support.docs.block_after (and "
        "list it in RUN), or put `<!-- not run by tests: REASON -->` just above it: "
        f"{unexplained}"
    )


def test_a_block_a_test_runs_does_not_say_it_is_not_run():
    both = [f"{b.doc}:{b.line}" for b in sh_blocks() if b.run and b.note]
    assert not both, f"run by a test, yet marked `not run by tests`: {both}"


def _block_after_calls() -> dict[tuple[str, str], str]:
    """(doc, heading) -> file of every block_after(...) call in the tests."""
    calls: dict[tuple[str, str], str] = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in ("tests/support/docs.py", "tests/unit/test_readme.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name != "block_after":
                continue
            args = list(node.args) + [k.value for k in node.keywords if k.arg == "doc"]
            assert all(isinstance(a, ast.Constant) for a in args), (
                f"{rel}:{node.lineno}: call block_after with literal arguments, so that "
                "tests/support/docs.py RUN can be checked against it"
            )
            heading, doc = args[0].value, (args[1].value if len(args) > 1 else "README.md")
            calls[(doc, heading)] = rel
    return calls


def test_the_registry_of_blocks_run_is_what_the_tests_ask_for():
    assert _block_after_calls() == RUN
    for doc, heading in RUN:
        assert "\n" in block_after(heading, doc=doc)


def test_a_block_no_test_runs_is_not_served():
    try:
        block_after("## The two commands")
    except KeyError as e:
        assert "RUN" in str(e)
    else:
        raise AssertionError("block_after served a block RUN does not list")


def test_shell_commands_are_in_sh_blocks():
    # Only ```sh blocks are checked above: a ```bash or ```console block would escape them.
    other = [
        f"{b.doc}:{b.line} ```{b.lang}"
        for d in docs()
        for b in read(d).blocks
        if b.lang in ("bash", "shell", "console", "zsh", "shell-session")
    ]
    assert not other, f"write these as ```sh: {other}"


def test_every_relative_link_resolves():
    assert sum(len(read(d).links) for d in docs()) >= 40  # a scanner that finds none checks none
    broken = broken_links()
    assert not broken, "\n".join(broken)


def test_the_link_check_finds_a_missing_file_or_heading(tmp_path: Path):
    (tmp_path / "docs" / "platforms").mkdir(parents=True)
    (tmp_path / "README.md").write_text(
        "# Top\n\n## Flip and roll back\n\n[ok](docs/a.md#the-hold-bluegreen-watch)\n"
        "[ok](#flip-and-roll-back) [ok](docs/platforms/) [web](https://example.com/x#y)\n"
        "[gone](docs/b.md) [no heading](docs/a.md#nowhere) `[in code](docs/c.md)`\n"
        "```sh\n[in a block](docs/d.md)\n```\n"
    )
    (tmp_path / "docs" / "a.md").write_text(
        "# A\n\n## The hold (`bluegreen watch`)\n\n[up](../README.md#top) [out](../../x.md)\n"
    )
    broken = broken_links(tmp_path)
    assert [b.split(": ", 1)[1] for b in broken] == [
        "docs/b.md (no such file)",
        "docs/a.md#nowhere (no such heading)",
        "../../x.md (outside the repository)",
    ], broken


def test_anchors_are_githubs():
    assert slug("### Figures (bench/, a 2-core machine)") == "figures-bench-a-2-core-machine"
    assert slug("## Background writers: one colour at a time") == (
        "background-writers-one-colour-at-a-time"
    )
    assert slug("## `bluegreen:maintenance` and [the queue](writes.md)") == (
        "bluegreenmaintenance-and-the-queue"
    )
    assert slug("## Stacks and config_keys") == "stacks-and-config_keys"


def test_repeated_headings_get_numbered_anchors(tmp_path: Path):
    (tmp_path / "README.md").write_text("# X\n\n## Commands\n\n## Commands\n")
    assert anchors("README.md", tmp_path) == {"x", "commands", "commands-1"}


def test_the_readme_is_a_front_page_that_links_every_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200, "the README is the front page: move detail to docs/"
    linked = {t.split("#")[0] for _, t in read("README.md").links}
    missing = [d for d in docs() if d != "README.md" and d not in linked]
    assert not missing, f"the README's table of contents does not link: {missing}"


def test_the_docs_speak_about_the_users_machines():
    said = []
    for doc in docs():
        if doc.startswith("docs/reference/"):
            continue  # generated from Pulumi.yaml and the argument parser
        for n, line in enumerate((ROOT / doc).read_text().splitlines(), 1):
            if re.search(r"\bthis (2-core )?machine\b", line, re.I):
                said.append(f"{doc}:{n}: {line.strip()}")
    assert not said, "say whose machine, or measure it with bench/: " + "\n".join(said)
