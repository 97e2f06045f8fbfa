"""The choice of stacks CI previews and updates from a git diff."""

import json
import os
import subprocess
import sys

from tests.support.changed_stacks_cases import STACKS


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
