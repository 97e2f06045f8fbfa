"""The docs' command blocks, as tests run them: the text a user copies is the text tested.

README.md and the pages under docs/ hold ```sh blocks. A test runs one with
`block_after(heading, doc=...)`, which serves only the blocks listed in RUN: tests/unit/
test_readme.py checks that RUN is exactly what the tests ask for, and that every other block
says why no test runs it, in a `<!-- not run by tests: REASON -->` comment just above it.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RUN: dict[tuple[str, str], str] = {
    ("README.md", "## Flip and roll back"): "tests/e2e/test_flip.py",
    ("docs/operating.md", "## Recovering an interrupted update"): "tests/e2e/test_cutover.py",
}
"""(doc, heading) of each block a test runs -> the test file that runs it."""

NOT_RUN = re.compile(r"<!--\s*not run by tests:\s*(\S(?:(?!-->).)*?)\s*-->\s*\Z", re.S)
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    doc: str  # the page, relative to the repository: "README.md", "docs/operating.md"
    line: int  # the line of its opening fence, from 1
    lang: str  # the fence's info string: "sh", "yaml", ""
    heading: str  # the nearest heading above it, as written: "## Flip and roll back"
    first: bool  # the first block of its language under that heading
    note: str | None  # the reason of a `<!-- not run by tests: ... -->` just above it
    text: str  # its content, without the fence's indentation

    @property
    def run(self) -> bool:
        """Whether a test runs it (block_after serves the first sh block under a heading)."""
        return self.lang == "sh" and self.first and (self.doc, self.heading) in RUN


@dataclass(frozen=True)
class Page:
    doc: str
    headings: list[tuple[int, str]]  # (line, heading as written), outside code blocks
    blocks: list[Block]
    links: list[tuple[int, str]]  # (line, target) of every inline link and link definition


def docs(root: Path = ROOT) -> list[str]:
    """README.md and every page under docs/, relative to `root`."""
    pages = [p for p in [root / "README.md"] if p.exists()]
    pages += sorted((root / "docs").rglob("*.md"))
    return [p.relative_to(root).as_posix() for p in pages]


def read(doc: str, root: Path = ROOT) -> Page:
    lines = (root / doc).read_text().splitlines()
    headings: list[tuple[int, str]] = []
    blocks: list[Block] = []
    links: list[tuple[int, str]] = []
    heading, seen = "", set()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            indent, marker, lang = fence.groups()
            closing = re.compile(rf"^\s*{re.escape(marker[0])}{{{len(marker)},}}\s*$")
            end = i + 1
            while end < len(lines) and not closing.match(lines[end]):
                end += 1
            body = [
                x[len(indent) :] if x.startswith(indent) else x.lstrip() for x in lines[i + 1 : end]
            ]
            note = NOT_RUN.search("\n".join(lines[:i]))
            blocks.append(
                Block(
                    doc=doc,
                    line=i + 1,
                    lang=lang,
                    heading=heading,
                    first=(heading, lang) not in seen,
                    note=note.group(1) if note else None,
                    text="".join(x + "\n" for x in body),
                )
            )
            seen.add((heading, lang))
            i = end + 1
            continue
        found = _HEADING.match(line)
        if found:
            heading = line.strip()
            headings.append((i + 1, heading))
        prose = _CODE_SPAN.sub("", line)
        links += [(i + 1, m.group(1)) for m in _LINK.finditer(prose)]
        links += [(i + 1, m.group(1)) for m in _DEFINITION.finditer(prose)]
        i += 1
    return Page(doc, headings, blocks, links)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lowercased, punctuation dropped, spaces '-'."""
    text = _HEADING.match(heading).group(2) if _HEADING.match(heading) else heading
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link reads as its text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(doc: str, root: Path = ROOT) -> set[str]:
    """Every anchor of a page, repeated headings numbered as GitHub numbers them (-1, -2)."""
    out: set[str] = set()
    for _, heading in read(doc, root).headings:
        base, n = slug(heading), 0
        name = base
        while name in out:
            n += 1
            name = f"{base}-{n}"
        out.add(name)
    return out


def broken_links(root: Path = ROOT) -> list[str]:
    """Every relative link of the pages whose file or #anchor does not exist."""
    broken = []
    for doc in docs(root):
        for line, target in read(doc, root).links:
            if not target or re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target):
                continue  # http:, https:, mailto: are not checked
            path, _, anchor = target.partition("#")
            dest = (root / doc).parent / path if path else root / doc
            where = f"{doc}:{line}: {target}"
            if not dest.resolve().is_relative_to(root.resolve()):
                broken.append(f"{where} (outside the repository)")
            elif not dest.exists():
                broken.append(f"{where} (no such file)")
            elif (
                anchor
                and dest.suffix == ".md"
                and anchor
                not in anchors(dest.resolve().relative_to(root.resolve()).as_posix(), root)
            ):
                broken.append(f"{where} (no such heading)")
    return broken


def sh_blocks(doc: str | None = None) -> list[Block]:
    """Every ```sh block of one page, or of them all."""
    return [b for d in ([doc] if doc else docs()) for b in read(d).blocks if b.lang == "sh"]


def block_after(heading: str, doc: str = "README.md") -> str:
    """The first ```sh block under `heading` (the line as written, "## Flip and roll back") in
    `doc`; only blocks RUN lists, so that a block a test runs cannot lose its test unnoticed."""
    if (doc, heading) not in RUN:
        raise KeyError(f"{doc} {heading!r} is not in tests/support/docs.py RUN: add it there")
    for block in sh_blocks(doc):
        if block.heading == heading and block.first:
            return block.text
    raise LookupError(f"{doc} has no ```sh block under {heading!r}")


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
