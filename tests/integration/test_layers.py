"""No module edits the import path at run time: every file of the tree, read."""

from __future__ import annotations

import re

from tests.support.layers_cases import ROOT_PATH

EDIT = re.compile(r"sys\.path\.(insert|append|extend)\(|sys\.path\s*(\+)?=")


def test_no_sys_path_edits():
    """Modules import by their package, never by editing the import path at run time."""
    edits = []
    for path in sorted(ROOT_PATH.rglob("*.py")):
        rel = path.relative_to(ROOT_PATH).as_posix()
        if rel.startswith(".venv/") or not EDIT.search(path.read_text()):
            continue
        edits.append(rel)
    assert edits == []
