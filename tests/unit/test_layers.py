"""The shape of the tree: four layers with arrows one way, and a policy pack that stands alone.

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

import ast
import re
import sys
from pathlib import Path

from tests.support.layers_cases import ROOT_PATH

OWN = {
    "bluegreen",
    "agents",
    "components",
    "platforms",
    "cutover",
    "bluegreen_policy",
    "tests",
    "bench",
}


# What each layer may import of the project's own top-level modules.
ALLOWED = {
    "core": {"bluegreen"},
    # A node carries the core and its agents only: an agent reaching into the tooling or the
    # program would drag Pulumi, rich and the judge onto every host.
    "agents": {"bluegreen", "agents"},
    # The program starts the agents and guards their store (a queue turned off with intents
    # pending); the tooling reads that store (`bluegreen queue`) and wraps the writer.
    "program": {"bluegreen", "agents", "components", "platforms"},
    "tooling": {"bluegreen", "agents", "cutover", "bluegreen_policy"},
    "policy": {"bluegreen_policy"},
    "app": set(),
}


def layer_of(rel: str) -> str | None:
    if rel.startswith("bluegreen/"):
        return "core"
    if rel.startswith("agents/"):
        return "agents"
    if rel == "__main__.py" or rel.startswith(("components/", "platforms/")):
        return "program"
    if rel.startswith("cutover/"):
        return "tooling"
    if rel.startswith("policy/"):
        return "policy"
    if rel.startswith("app/"):
        return "app"
    return None


def imported(path: Path) -> set[str]:
    """Top-level names of everything the module imports, also inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def policy_requirements(root: Path) -> set[str]:
    """The import names of the distributions policy/requirements.txt declares."""
    names = set()
    for line in (root / "policy" / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(re.split(r"[<>=!~\[ ;]", line)[0].lower().replace("-", "_"))
    return names


def violations(root: Path) -> list[str]:
    found = []
    declared = policy_requirements(root)
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith((".venv/", ".pulumi-state/", ".bluegreen/")):
            continue
        layer = layer_of(rel)
        if layer is None:
            continue
        for name in sorted(imported(path)):
            if name in OWN and name not in ALLOWED[layer]:
                found.append(f"{rel} ({layer}) imports {name}")
            elif layer == "policy" and name not in OWN | declared | sys.stdlib_module_names:
                found.append(f"{rel} (policy) imports {name}, not in policy/requirements.txt")
    return found


def test_imports_point_one_way():
    assert violations(ROOT_PATH) == []


def test_the_tooling_takes_only_the_judge_from_the_pack():
    """The hold judges with the gate's judge; the rest of the pack is the engine's business."""
    taken = set()
    for path in sorted((ROOT_PATH / "cutover").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "bluegreen_policy"
            ):
                taken.add(f"{node.module}:{','.join(a.name for a in node.names)}")
            elif isinstance(node, ast.Import):
                taken.update(a.name for a in node.names if a.name.startswith("bluegreen_policy"))
    assert taken and all(
        t.startswith(("bluegreen_policy.judge", "bluegreen_policy:judge")) for t in taken
    ), taken


def test_a_wrong_way_import_is_caught(tmp_path):
    """The check itself can fail: the core reaching up, and the pack reaching into the core."""
    (tmp_path / "bluegreen").mkdir()
    (tmp_path / "bluegreen" / "config.py").write_text("from platforms import local\n")
    (tmp_path / "policy" / "bluegreen_policy").mkdir(parents=True)
    (tmp_path / "policy" / "requirements.txt").write_text("pulumi-policy==1.21.0\n")
    (tmp_path / "policy" / "bluegreen_policy" / "rules.py").write_text(
        "import json\nimport pulumi_policy\nfrom bluegreen import probe\nimport httpx\n"
    )
    (tmp_path / "cutover").mkdir()
    (tmp_path / "cutover" / "cli.py").write_text("def f():\n    import components\n")
    (tmp_path / "agents" / "arm").mkdir(parents=True)
    (tmp_path / "agents" / "arm" / "writer.py").write_text("from cutover import workspace\n")
    (tmp_path / "bluegreen" / "probe.py").write_text("from agents.edge import intents\n")
    assert violations(tmp_path) == [
        "agents/arm/writer.py (agents) imports cutover",
        "bluegreen/config.py (core) imports platforms",
        "bluegreen/probe.py (core) imports agents",
        "cutover/cli.py (tooling) imports components",
        "policy/bluegreen_policy/rules.py (policy) imports bluegreen",
        "policy/bluegreen_policy/rules.py (policy) imports httpx, not in policy/requirements.txt",
    ]


def test_the_tooling_and_the_pack_agree_on_the_names_they_share():
    """The pack cannot import the tooling's names, nor the tooling the pack's: pinned here."""
    from bluegreen_policy import settings, smoke

    from bluegreen import probe
    from cutover import flip_log, rolling_back

    assert rolling_back.SMOKE_POLICY == settings.SMOKE
    assert flip_log.SMOKE_REPORT_ENV == smoke.REPORT_ENV
    assert probe.PROBE_HEADER == smoke.PROBE_HEADER


SIZE = 360  # "about 350 lines"
ONE_PIECE = re.compile(r"\bOne (module|piece)\b")


def long_modules(root: Path) -> list[str]:
    """Modules of the project over SIZE lines whose docstring does not say why they are one
    piece (a sentence beginning "One module" or "One piece")."""
    long = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith((".venv/", "tests/")) or "/." in f"/{rel}":
            continue
        text = path.read_text()
        why = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > SIZE and not ONE_PIECE.search(why):
            long.append(f"{rel} ({text.count(chr(10))} lines)")
    return long


def test_no_module_is_long_without_saying_why():
    assert long_modules(ROOT_PATH) == []


def test_a_long_module_without_a_reason_is_caught(tmp_path):
    (tmp_path / "big.py").write_text('"""Many things."""\n' + "x = 1\n" * (SIZE + 1))
    (tmp_path / "fine.py").write_text('"""One module: a reason."""\n' + "x = 1\n" * (SIZE + 1))
    assert long_modules(tmp_path) == [f"big.py ({SIZE + 2} lines)"]


def same_names(root: Path) -> dict[str, list[str]]:
    """Module file names that more than one module of the project uses (tests, whose tiers
    pair by name, and package markers aside)."""
    seen: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith((".venv/", "tests/")) or "/." in f"/{rel}":
            continue
        if path.name not in ("__init__.py", "__main__.py"):
            seen.setdefault(path.name, []).append(rel)
    return {name: rels for name, rels in seen.items() if len(rels) > 1}


def test_no_two_modules_share_a_name():
    """A name says which module it is: no evidence.py in three packages, told apart by aliases."""
    assert same_names(ROOT_PATH) == {}


def test_two_modules_of_one_name_are_caught(tmp_path):
    for rel in ("a/evidence.py", "b/evidence.py", "a/__init__.py", "b/__init__.py"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text("")
    assert same_names(tmp_path) == {"evidence.py": ["a/evidence.py", "b/evidence.py"]}


def cross_imports(tests_dir: Path) -> dict[str, list[str]]:
    """Each test module that imports another test module (anything under tests/ but
    tests/support), and what it imports."""
    found: dict[str, list[str]] = {}
    for path in sorted(tests_dir.rglob("*.py")):
        rel = path.relative_to(tests_dir).as_posix()
        if rel.startswith("support/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                package = node.module in ("tests", "tests.unit", "tests.integration", "tests.e2e")
                names = [f"{node.module}.{a.name}" for a in node.names]
                names = names if package else [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            bad = [
                n
                for n in names
                if n.startswith("tests.") and not n.startswith(("tests.support", "tests.conftest"))
            ]
            if bad:
                found.setdefault(rel, []).extend(bad)
    return found


def test_no_test_module_imports_another():
    """What tests share lives in tests/support: a test module is never another's library."""
    assert cross_imports(ROOT_PATH / "tests") == {}


def test_a_test_module_importing_another_is_caught(tmp_path):
    (tmp_path / "unit").mkdir()
    (tmp_path / "support").mkdir()
    (tmp_path / "unit" / "test_a.py").write_text("from tests.unit.test_b import THING\n")
    (tmp_path / "unit" / "test_c.py").write_text("from tests.integration import test_d\n")
    (tmp_path / "support" / "ok.py").write_text("from tests.unit.test_b import THING\n")
    assert cross_imports(tmp_path) == {
        "unit/test_a.py": ["tests.unit.test_b"],
        "unit/test_c.py": ["tests.integration.test_d"],
    }
