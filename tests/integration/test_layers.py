"""The integration tier (real processes) of what follows.

The shape of the tree: four layers with arrows one way, and a policy pack that stands alone.

    core      bluegreen/                           config, probes, renderers, shared facts
    agents    agents/                              what runs on hosts (the edge's queue service
                                                   and store, an arm's writer): the core only
    program   __main__.py, components/, platforms/ the Pulumi program: imports the core
    tooling   cutover/                             the `bluegreen` command: imports the core,
                                                   and the pack's judge (one judge, gate and hold)
    policy    policy/                              pulumi-policy, the standard library, itself

The program and the tooling never import each other: the tooling drives the program through the
pulumi CLI, as a person does. Tests, benches and scripts sit on top and
may import anything; nothing imports them.
"""

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
