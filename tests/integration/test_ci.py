"""`bluegreen commit-rollback` against real git: a checkout in a temporary directory whose
`origin` is a bare repository next to it. GitHub cannot be reached from here, so `gh` is a stand-in
on PATH that records the arguments it was called with and answers with a pull request address, as
the real `gh pr create` does; everything else (commits, pushes, a pre-receive hook refusing main
as branch protection does) is real git."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cutover import ci
from tests.support.ci_cases import LIVE, REASON

BLUEGREEN = os.path.join(os.path.dirname(sys.executable), "bluegreen")


RUN = "https://github.example/acme/shop/actions/runs/4242"


def git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> tuple[Path, Path, dict[str, str]]:
    """(checkout, bare origin, environment): main has the merged flip blue -> green, pushed; the
    checkout's working tree has the watch's revert of the pointer, as `pulumi config set` writes
    it. The environment is GitHub Actions' (run address) with no git identity configured."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_RUN_ID": "4242",
    }
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin), env=env)
    git(tmp_path, "init", "-q", "-b", "main", str(work), env=env)
    who = ["-c", "user.name=dev", "-c", "user.email=dev@example.test"]
    (work / "Pulumi.yaml").write_text("name: bluegreen\nruntime: python\n")
    (work / "README.md").write_text("shop\n")
    (work / "Pulumi.live.yaml").write_text(LIVE.format(color="blue"))
    git(work, "add", "-A", env=env)
    git(work, *who, "commit", "-qm", "base", env=env)
    (work / "Pulumi.live.yaml").write_text(LIVE.format(color="green"))
    git(work, *who, "commit", "-qam", "Flip live to green", env=env)
    git(work, "remote", "add", "origin", str(origin), env=env)
    git(work, "push", "-q", "origin", "main", env=env)
    (work / "Pulumi.live.yaml").write_text(LIVE.format(color="blue"))  # the watch's revert
    return work, origin, env


@pytest.fixture
def verdict_file(tmp_path) -> Path:
    """The verdict of a watch that rolled back green -> blue, outside the checkout as in CI."""
    path = tmp_path / "verdict.json"
    figures = {
        "blue": {"requests": 0, "errors": 0, "p95Ms": None},
        "green": {"requests": 120, "errors": 31, "p95Ms": 812.5},
    }
    ci.write_verdict(
        str(path), ci.verdict_record("live", "green", "breach", REASON, figures, 14.2, True)
    )
    return path


def commit_rollback(work: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BLUEGREEN, "commit-rollback", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def refuse_main(origin: Path) -> None:
    """Branch protection, as a pre-receive hook in the bare origin (shell builtins only)."""
    hook = origin / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do\n"
        '  if [ "$ref" = refs/heads/main ]; then\n'
        '    echo "protected branch: main needs a pull request" >&2; exit 1\n'
        "  fi\ndone\n"
    )
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)


def fake_gh(tmp_path: Path, env: dict[str, str]) -> Path:
    """A `gh` first on PATH that records its arguments (NUL-separated) and prints a PR address."""
    bin_dir, record = tmp_path / "bin", tmp_path / "gh-args"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(
        f"#!/bin/sh\nprintf '%s\\0' \"$@\" > '{record}'\n"
        "echo https://github.example/acme/shop/pull/7\n"
    )
    gh.chmod(gh.stat().st_mode | stat.S_IXUSR)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return record


def test_the_revert_is_one_commit_of_the_stack_file_pushed_to_main(repo, verdict_file):
    work, origin, env = repo
    before = git(work, "rev-parse", "HEAD", env=env)
    out = commit_rollback(work, env, "--verdict-file", str(verdict_file))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "the repository and the stack agree" in out.stdout
    assert git(work, "rev-list", f"{before}..HEAD", env=env).split() == [
        git(work, "rev-parse", "HEAD", env=env)
    ]
    assert git(work, "show", "--name-only", "--format=", "HEAD", env=env) == "Pulumi.live.yaml"
    diff = git(work, "show", "--format=", "-U0", "HEAD", env=env).splitlines()
    assert [ln for ln in diff if ln[:1] in "+-" and ln[:3] not in ("+++", "---")] == [
        "-  bluegreen:activeColor: green",
        "+  bluegreen:activeColor: blue",
    ]
    subject = git(work, "log", "-1", "--format=%s", env=env)
    assert subject == "Roll back live: green -> blue (stop rule broken)"
    body = git(work, "log", "-1", "--format=%b", env=env)
    assert f"Breach: {REASON}" in body
    assert "green: 120 requests, 31 errors, p95 812.5 ms" in body
    assert f"CI run: {RUN}" in body
    trailers = git(work, "log", "-1", "--format=%(trailers:only,unfold)", env=env)
    assert trailers == f"Bluegreen-Rollback: {RUN}"
    assert git(origin, "rev-parse", "main", env=env) == git(work, "rev-parse", "HEAD", env=env)
    assert git(work, "status", "--porcelain", env=env) == ""


def test_a_refused_push_opens_a_pull_request_and_fails_loudly(repo, verdict_file, tmp_path):
    """Branch protection is a pre-receive hook refusing main; `gh` is the recording stand-in."""
    work, origin, env = repo
    refuse_main(origin)
    record = fake_gh(tmp_path, env)
    main_before = git(origin, "rev-parse", "main", env=env)

    out = commit_rollback(work, env, "--verdict-file", str(verdict_file))

    assert out.returncode == 1, out.stdout + out.stderr
    assert "THE LIVE STACK WAS ROLLED BACK (green -> blue)" in out.stderr
    assert "The repository must be fixed" in out.stderr
    assert "https://github.example/acme/shop/pull/7" in out.stderr
    assert "protected branch: main needs a pull request" in out.stderr
    assert git(origin, "rev-parse", "main", env=env) == main_before
    branch = "bluegreen/rollback-green-to-blue-4242"
    head = git(work, "rev-parse", "HEAD", env=env)
    assert git(origin, "rev-parse", f"refs/heads/{branch}", env=env) == head
    args = record.read_text().split("\0")[:-1]
    assert args[:8] == [
        "pr",
        "create",
        "--base",
        "main",
        "--head",
        branch,
        "--title",
        "Roll back live: green -> blue (stop rule broken)",
    ]
    assert args[8] == "--body" and REASON in args[9] and "Bluegreen-Rollback: " in args[9]
    assert len(args) == 10


def test_no_gh_still_leaves_the_branch_and_says_what_to_do(repo, verdict_file, tmp_path):
    """PATH holds git alone, so no `gh` of the machine's is found either."""
    work, origin, env = repo
    refuse_main(origin)
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git"))
    env["PATH"] = str(only_git)
    out = commit_rollback(work, env, "--verdict-file", str(verdict_file))
    assert out.returncode == 1
    assert "no `gh` on PATH" in out.stderr
    assert "open one from bluegreen/rollback-green-to-blue-4242 into main by hand" in out.stderr


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            lambda w: (w / "README.md").write_text("edited\n"),
            "other changes than Pulumi.live.yaml: README.md",
        ),
        (
            lambda w: (w / "notes.txt").write_text("new\n"),
            "other changes than Pulumi.live.yaml: notes.txt",
        ),
        (
            lambda w: (w / "Pulumi.live.yaml").write_text(
                LIVE.format(color="blue").replace("bluegreen.test", "shop.test")
            ),
            "changes more than the pointer bluegreen:activeColor: also bluegreen:dnsZone",
        ),
        (
            lambda w: (w / "Pulumi.live.yaml").write_text(LIVE.format(color="green")),
            "Pulumi.live.yaml is as HEAD has it",
        ),
    ],
    ids=["another-file", "untracked-file", "another-key", "no-revert"],
)
def test_anything_but_the_pointer_revert_is_refused_and_nothing_committed(
    change, named, repo, verdict_file
):
    work, origin, env = repo
    change(work)
    head, tree = (
        git(work, "rev-parse", "HEAD", env=env),
        git(work, "status", "--porcelain", env=env),
    )
    out = commit_rollback(work, env, "--verdict-file", str(verdict_file))
    assert out.returncode == 1
    assert "bluegreen commit-rollback: refused, nothing was committed: " in out.stderr
    assert named in out.stderr
    assert git(work, "rev-parse", "HEAD", env=env) == head
    assert git(work, "status", "--porcelain", env=env) == tree
    assert git(origin, "rev-parse", "main", env=env) == head


def test_a_revert_the_other_way_than_the_verdict_is_refused(repo, tmp_path):
    work, origin, env = repo
    path = tmp_path / "other-way.json"
    path.write_text(
        json.dumps(ci.verdict_record("live", "blue", "inconclusive", "too few", {}, 30.0, True))
    )
    head = git(work, "rev-parse", "HEAD", env=env)
    out = commit_rollback(work, env, "--verdict-file", str(path))
    assert out.returncode == 1
    assert (
        "moves bluegreen:activeColor from 'green' to 'blue', but the verdict's rollback went "
        "from 'blue' to 'green'"
    ) in out.stderr
    assert git(work, "rev-parse", "HEAD", env=env) == head


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "cannot read {path!r}: No such file or directory"),
        ("{not json", "{path!r} is not JSON"),
        ("[]", "{path!r} holds list, not an object"),
        (
            json.dumps(ci.verdict_record("live", "green", "held", None, {}, 30.0, False)),
            "must be the verdict of a watch that rolled back; {path!r} has outcome 'held' and "
            "rolledBack False",
        ),
        (
            json.dumps({"outcome": "breach", "rolledBack": True, "from": "green", "to": "red"}),
            "'to' in {path!r} is 'red', not one of blue, green",
        ),
    ],
    ids=["missing", "not-json", "not-an-object", "held", "bad-colour"],
)
def test_a_bad_verdict_file_exits_2_naming_the_option_and_the_file(content, why, repo, tmp_path):
    work, origin, env = repo
    path = tmp_path / "verdict.json"
    if content is not None:
        path.write_text(content)
    head = git(work, "rev-parse", "HEAD", env=env)
    out = commit_rollback(work, env, "--verdict-file", str(path))
    assert out.returncode == 2
    assert "bluegreen commit-rollback: error: argument --verdict-file: " in out.stderr
    assert why.format(path=str(path)) in out.stderr
    assert git(work, "rev-parse", "HEAD", env=env) == head
    assert git(work, "diff", "--name-only", env=env) == "Pulumi.live.yaml"
