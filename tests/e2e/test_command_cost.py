"""What each `bluegreen` command pays for: the `pulumi` processes it starts itself, counted by a
`pulumi` first on PATH that notes its parent and arguments and then runs the real one. The
policy pack's own reads (started by the engine, not by the command) are not the command's.

Each command reads each stack once, decrypts nothing it does not use, never selects a stack (the
user's selected stack stays as it was), and the rollback's update is its second process."""

from __future__ import annotations

import os
import stat

import pytest

from tests.support.watcher import Watcher


@pytest.fixture
def counted(project, tmp_path):
    """The project with a counting `pulumi`; yields (project, calls) where calls(pid) lists the
    argument lists of the pulumi processes `pid` started.

    The command finds its CLI where scripts/env says (the build cache), so the counting one is
    put in a cache of the test's own, beside links to the real language host and plugins."""
    env = project.ws.env
    real_bin = env["PULUMI_BIN"]
    cache = tmp_path / "cache"
    shim = cache / os.path.relpath(real_bin, env["BLUEGREEN_CACHE"])
    shim.mkdir(parents=True)
    for name in os.listdir(real_bin):
        if name != "pulumi":
            os.symlink(os.path.join(real_bin, name), shim / name)
    log = tmp_path / "pulumi-calls"
    wrapper = shim / "pulumi"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\0" "$PPID" "$@" >> "{log}"\n'
        f'printf "\\n" >> "{log}"\n'
        f'exec "{real_bin}/pulumi" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    env.update(
        BLUEGREEN_CACHE=str(cache), PULUMI_BIN=str(shim), PATH=f"{shim}{os.pathsep}{env['PATH']}"
    )

    def calls(pid: int) -> list[list[str]]:
        found = []
        for line in log.read_text().splitlines() if log.exists() else []:
            parent, *args = line.split("\0")[:-1]
            if int(parent) == pid:
                found.append(args)
        return found

    yield project, calls


def _run(project, *args: str) -> tuple[int, str]:
    with project.bluegreen(*args) as proc:
        out, _ = proc.communicate(timeout=300)
    return proc, out


def _selected(project) -> str:
    return project.ws.run(["stack", "--show-name"]).stdout.strip()


def test_each_command_starts_only_the_pulumi_processes_it_needs_and_selects_no_stack(counted):
    project, calls = counted
    project.up_all(active="blue")
    project.ws.run(["stack", "select", "--stack", "green"])  # the user's own choice
    verbs = lambda pid: [" ".join(a[:2]) for a in calls(pid)]  # noqa: E731

    proc, out = _run(project, "status")
    assert proc.returncode == 0, out
    # The live stack alone: it names the arms, which are asked directly how they are.
    assert verbs(proc.pid) == ["stack output"], out
    assert "  green v2         ready" in out, out
    assert all("--show-secrets" not in a for a in calls(proc.pid)), out

    with Watcher(project.edge_url):  # traffic for the hold to judge
        proc, out = _run(project, "flip", "green", "--hold", "3s", "--interval", "0.5s")
    assert proc.returncode == 0, out
    assert sorted(verbs(proc.pid)) == sorted(
        ["stack output"] * 3
        + ["config set-all", "preview --stack", "up --stack"]
        + ["stack export", "stack import"]  # the hold's verdict, with no second update
    ), out
    [record] = project.ws.outputs("live")["evidence"][-1:]
    assert record["hold"]["verdict"] == "held" and record["to"]["activeColor"] == "green"

    proc, out = _run(project, "rollback")
    assert proc.returncode == 0, out
    assert verbs(proc.pid) == ["config set-all", "up --stack"], out
    assert "rolled back green -> blue" in out
    assert project.colors(10) == ["blue"] * 10

    assert _selected(project) == "green", "a command changed the user's selected stack"
    preview = project.ws.preview("live", expect_no_changes=True)
    assert preview.returncode == 0, "the evidence written after the hold shows as a change"
