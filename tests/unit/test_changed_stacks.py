"""The choice of stacks CI previews and updates from a git diff."""

import json
import os
import subprocess
import sys

import pytest

from scripts.changed_stacks import stacks_for

STACKS = ["blue", "green", "live"]


def test_the_one_line_flip_touches_only_live():
    assert stacks_for(["Pulumi.live.yaml"], STACKS) == ["live"]


def test_an_arm_deploy_touches_only_that_arm():
    assert stacks_for(["Pulumi.green.yaml", "README.md"], STACKS) == ["green"]


def test_program_changes_touch_every_stack_arms_first():
    assert stacks_for(["components/edge.py"], STACKS) == ["blue", "green", "live"]
    assert stacks_for(["policy/bluegreen_policy/rules.py", "Pulumi.live.yaml"], STACKS) == [
        "blue",
        "green",
        "live",
    ]


def test_docs_and_tests_touch_nothing():
    assert stacks_for(["README.md", "tests/unit/test_config.py", "bench/x.py"], STACKS) == []


def test_a_deleted_stack_file_is_not_deployed():
    assert stacks_for(["Pulumi.staging.yaml"], STACKS) == []


@pytest.mark.integration
def test_the_command_reads_a_real_git_diff(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    for stack in STACKS:
        (tmp_path / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    (tmp_path / "Pulumi.live.yaml").write_text("config:\n  bluegreen:activeColor: green\n")
    subprocess.run([*git, "commit", "-qam", "flip"], check=True)
    script = os.path.join(root, "scripts", "changed_stacks.py")

    def run(*args: str) -> str:
        return subprocess.run(
            [sys.executable, script, *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    assert run("HEAD~1", "HEAD").split() == ["live"]
    # The workflows' matrix reads the JSON form.
    assert json.loads(run("--json", "HEAD~1", "HEAD")) == ["live"]
    assert json.loads(run("--json", "HEAD", "HEAD")) == []
