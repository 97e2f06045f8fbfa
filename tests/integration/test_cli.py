"""The `bluegreen` command refuses bad arguments before anything is read or changed: each error
names the argument, the value it got and what is allowed, and the command exits 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cutover.cli import main
from cutover.workspace import ROOT, Workspace, toolchain_env

BLUEGREEN = os.path.join(os.path.dirname(sys.executable), "bluegreen")


CANARY = (
    "increasing percentages from 1 to 100, comma-separated and ending with 100, such as 5,25,100"
)


@pytest.fixture(scope="module")
def edge_project(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A project with an edge stack `live` and an arm stack `green` (never deployed), on a file
    backend of its own."""
    top = tmp_path_factory.mktemp("cli")
    project, state = top / "project", top / "state"
    project.mkdir()
    state.mkdir()
    shutil.copy(os.path.join(ROOT, "Pulumi.yaml"), project)
    (project / "Pulumi.live.yaml").write_text(
        "config:\n  bluegreen:role: edge\n  bluegreen:activeColor: blue\n"
    )
    (project / "Pulumi.green.yaml").write_text(
        "config:\n  bluegreen:role: arm\n  bluegreen:color: green\n  bluegreen:version: v2\n"
    )
    env = toolchain_env()
    env.update(PULUMI_BACKEND_URL=f"file://{state}", PULUMI_CONFIG_PASSPHRASE="unit")
    ws = Workspace(project_dir=str(project), env=env)
    for stack in ("live", "green"):
        ws.ensure_stack(stack)
    return project, env


def files(top: Path) -> dict[str, bytes]:
    """Every file under `top` (project and backend) with its content."""
    return {str(p.relative_to(top)): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


def bluegreen(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The installed console command, as a person runs it."""
    return subprocess.run(
        [BLUEGREEN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        (["flip", "green", "--canary", "5,3"], CANARY),
        (["flip", "green", "--canary", "0,100"], CANARY),
        (["flip", "green", "--canary", "5,25"], CANARY),
        (["flip", "green", "--canary", "five,100"], CANARY),
        (
            ["flip", "green", "--hold", "10x"],
            "a duration of 0 or more seconds such as 30s, 2m or 1h",
        ),
        (["watch", "--interval", "0"], "a duration of more than 0 seconds such as 30s, 2m or 1h"),
        (["flip", "green", "--error-tolerance", "2"], "a share from 0 to 1, such as 0.01 for 1%"),
        (
            ["watch", "--latency-tolerance", "-1"],
            "a share of the compared median from 0 to 10, such as 0.15 for 15%",
        ),
    ],
)
def test_a_bad_value_exits_2_naming_the_argument_the_value_and_what_is_allowed(
    argv, allowed, edge_project, monkeypatch, capsys
):
    option, value = argv[-2:]
    assert refused(argv, edge_project, monkeypatch, capsys) == (
        f"argument {option}: must be {allowed}; got {value!r}"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["flip", "purple"],
            "argument color: invalid choice: 'purple' (choose from 'blue', 'green')",
        ),
        (
            ["flop"],
            "argument command: invalid choice: 'flop' (choose from 'flip', 'shadow', "
            "'rollback', 'status', 'queue', 'watch', 'commit-rollback', 'writer')",
        ),
        (["flip"], "the following arguments are required: color"),
        (["status", "--canary", "5,100"], "unrecognized arguments: --canary 5,100"),
        (
            ["queue", "purge"],
            "argument action: invalid choice: 'purge' (choose from 'list', 'retry', 'drop')",
        ),
        (
            ["queue", "drop"],
            "queue: list takes no receipt; retry takes a receipt or --all; drop takes a "
            "receipt (got: drop )",
        ),
        (
            ["queue", "drop", "--all"],
            "queue drop: name the receipt of one dead letter (drop has no --all)",
        ),
        (
            ["queue", "list", "r-1"],
            "queue: list takes no receipt; retry takes a receipt or --all; drop takes a "
            "receipt (got: list r-1)",
        ),
    ],
)
def test_a_bad_choice_exits_2_naming_what_is_allowed(
    argv, message, edge_project, monkeypatch, capsys
):
    assert refused(argv, edge_project, monkeypatch, capsys) == message


def refused(argv, edge_project, monkeypatch, capsys) -> str:
    """The error `bluegreen argv` exits 2 with, run in the project; it must change no file."""
    project, _ = edge_project
    monkeypatch.chdir(project)
    before = files(project.parent)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert files(project.parent) == before
    return capsys.readouterr().err.strip().splitlines()[-1].split(" error: ", 1)[1]


def test_the_installed_command_refuses_a_bad_canary_before_it_reads_a_stack(edge_project):
    project, env = edge_project
    before = files(project.parent)
    out = bluegreen("flip", "green", "--canary", "5,3", cwd=project, env=env)
    assert out.returncode == 2
    assert f"bluegreen flip: error: argument --canary: must be {CANARY}; got '5,3'" in out.stderr
    assert "$ pulumi" not in out.stderr and out.stdout == ""  # no pulumi command ran
    assert files(project.parent) == before


def test_a_stack_that_does_not_exist_is_named_with_the_ones_that_do(edge_project):
    project, env = edge_project
    before = files(project.parent)
    out = bluegreen("status", "--stack", "livee", cwd=project, env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    assert (
        'bluegreen: error: argument --stack: no stack "livee" in this project; '
        "its stacks: green, live"
    ) in out.stderr
    out = bluegreen("rollback", cwd=project, env={**env, "BLUEGREEN_LIVE_STACK": "livee"})
    assert out.returncode == 2
    assert '$BLUEGREEN_LIVE_STACK: no stack "livee" in this project' in out.stderr
    assert files(project.parent) == before, "no stack was created, no file was written"


def test_an_arm_stack_is_not_taken_for_the_edge(edge_project):
    project, env = edge_project
    before = files(project.parent)
    out = bluegreen("rollback", "--stack", "green", cwd=project, env=env)
    assert out.returncode == 2
    assert (
        'bluegreen:role of stack "green" is "arm": the cutover needs the edge stack' in out.stderr
    )
    assert files(project.parent) == before


STATUS_FILE = "a file `bluegreen status --json` wrote"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "must be " + STATUS_FILE + "; cannot read {path!r}: No such file or directory"),
        ("not json", "must be " + STATUS_FILE + "; {path!r} is not JSON"),
        ('"blue"', "must be " + STATUS_FILE + "; {path!r} holds str, not an object"),
        ('{"activeColor": "blue"}', "must be " + STATUS_FILE + "; {path!r} has no weights"),
        (
            '{"activeColor": "blue", "weights": 100}',
            "must be " + STATUS_FILE + "; the weights in {path!r} are 100, not an object",
        ),
    ],
    ids=["missing", "not-json", "not-an-object", "no-weights", "bad-weights"],
)
def test_a_bad_before_file_exits_2_naming_the_option_and_the_file(
    content, why, edge_project, tmp_path, monkeypatch, capsys
):
    path = tmp_path / "before.json"
    if content is not None:
        path.write_text(content)
    argv = ["watch", "--if-moved-since", str(path)]
    assert refused(argv, edge_project, monkeypatch, capsys).startswith(
        "argument --if-moved-since: " + why.format(path=str(path))
    )


def test_a_verdict_file_in_a_missing_directory_exits_2(edge_project, tmp_path, monkeypatch, capsys):
    path = str(tmp_path / "no-such-dir" / "verdict.json")
    assert refused(["watch", "--verdict-file", path], edge_project, monkeypatch, capsys) == (
        "argument --verdict-file: must be a file to write the verdict to, in a directory that "
        f"exists; got {path!r}"
    )


def test_status_json_is_the_record_watch_compares_with(edge_project, tmp_path):
    """On an edge never deployed: `status --json` prints JSON alone on stdout (pulumi's steps go
    to stderr); `watch --if-moved-since` that record finds nothing moved and exits 0 without
    holding, writing the verdict `unmoved`; a record of another colour makes it watch (and stop,
    there being no colour to watch yet)."""
    project, env = edge_project
    out = bluegreen("status", "--json", cwd=project, env=env)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record == {
        "stack": "live",
        "activeColor": None,
        "weights": None,
        "maintenance": None,
        "url": None,
        "arms": {
            "blue": {"stack": "blue", "version": None},
            "green": {"stack": "green", "version": None},
        },
    }
    assert "$ pulumi stack output --stack live" in out.stderr
    before, verdict = tmp_path / "before.json", tmp_path / "verdict.json"
    before.write_text(out.stdout)
    args = [
        "watch",
        "--hold",
        "1s",
        "--if-moved-since",
        str(before),
        "--verdict-file",
        str(verdict),
    ]
    out = bluegreen(*args, cwd=project, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (
        f"the traffic did not move since {before} (no colour, weights null): nothing to watch"
        in (out.stdout)
    )
    assert json.loads(verdict.read_text())["outcome"] == "unmoved"
    verdict.unlink()

    before.write_text(json.dumps({**record, "activeColor": "green", "weights": {"green": 100}}))
    out = bluegreen(*args, cwd=project, env=env)
    assert out.returncode == 1
    assert "watch: the live stack has no active colour yet; nothing to watch" in out.stdout
    assert "did not move" not in out.stdout
    assert not verdict.exists()  # no hold, no verdict
