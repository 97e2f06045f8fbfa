"""`bluegreen commit-rollback`: the commit that makes the repository agree with the stack after the
CI watch rolled it back (cutover/ci.py).

A rollback during the watch writes the pointer back in Pulumi.<stack>.yaml (`pulumi config set`)
and updates the edge: the stack runs the old colour while the default branch still names the new
one. `commit_rollback` commits that one-line revert and pushes it; when the push is refused
(branch protection), it pushes a branch, opens a pull request and fails loudly, since the
repository stays wrong until somebody merges it. It runs only git (and gh).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import yaml

from bluegreen.flip_evidence import run_url
from bluegreen.live_stack import CANARY, POINTER
from cutover.results import Outcome, Report

TRAILER = "Bluegreen-Rollback"
BRANCH_PREFIX = "bluegreen/rollback-"


class Refused(RuntimeError):
    """commit-rollback will not commit: the message says why; nothing was changed."""


@dataclass
class Git:
    """git in one checkout, as a person types it; a failing command raises `GitError`."""

    cwd: str
    env: Mapping[str, str] | None = None

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run(
            ["git", *args],
            cwd=self.cwd,
            env=None if self.env is None else dict(self.env),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and out.returncode != 0:
            raise GitError(f"`git {' '.join(args)}` failed:\n{(out.stderr or out.stdout).strip()}")
        return out


class GitError(RuntimeError):
    pass


def check_revert(head: str, tree: str, verdict: Mapping, path: str) -> None:
    """Refuses unless `tree` differs from `head` (both texts of the stack file) by the pointer
    going from the verdict's `from` back to its `to`, and at most a canary weight removed."""
    try:
        old, new = yaml.safe_load(head) or {}, yaml.safe_load(tree) or {}
    except yaml.YAMLError as err:
        raise Refused(f"{path} is not valid YAML: {err}") from None
    if not isinstance(old, dict) or not isinstance(new, dict):
        raise Refused(f"{path} is not a stack file (a YAML mapping with `config:`)")
    others = sorted(k for k in set(old) | set(new) if k != "config" and old.get(k) != new.get(k))
    if others:
        raise Refused(f"{path} changes more than the pointer: {', '.join(others)}")
    before, after = old.get("config") or {}, new.get("config") or {}
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    extra = [k for k in changed if k != POINTER and not (k == CANARY and k not in after)]
    if extra:
        raise Refused(
            f"{path} changes more than the pointer {POINTER}: also {', '.join(extra)}; "
            "commit-rollback commits only the revert the watch wrote"
        )
    if POINTER not in changed:
        raise Refused(f"{path} does not change {POINTER}: there is no pointer revert to commit")
    frm, to = before.get(POINTER), after.get(POINTER)
    if (frm, to) != (verdict["from"], verdict["to"]):
        raise Refused(
            f"{path} moves {POINTER} from {frm!r} to {to!r}, but the verdict's rollback went "
            f"from {verdict['from']!r} to {verdict['to']!r}"
        )


def message(stack: str, verdict: Mapping, url: str | None, ident: str) -> tuple[str, str]:
    """The commit's subject and body (with the trailer)."""
    frm, to = verdict["from"], verdict["to"]
    what = "stop rule broken" if verdict["outcome"] == "breach" else "inconclusive hold"
    subject = f"Roll back {stack}: {frm} -> {to} ({what})"
    lines = [
        f"The hold after the deploy watched {frm} on the {stack} stack and ended "
        f"{verdict['outcome']}, so `bluegreen watch` rolled the edge back to {to}. This commit",
        f"writes the same pointer revert into Pulumi.{stack}.yaml, so the repository says what "
        "the stack runs.",
        "",
        f"{'Breach' if verdict['outcome'] == 'breach' else 'Reason'}: {verdict.get('reason')}",
    ]
    if verdict.get("seconds") is not None:
        lines.append(f"Held: {verdict['seconds']} s")
    figures = verdict.get("figures") or {}
    if figures:
        lines.append("Figures:")
        for color in sorted(figures):
            f = figures[color] or {}
            p95 = f.get("p95Ms")
            lines.append(
                f"  {color}: {f.get('requests')} requests, {f.get('errors')} errors, "
                f"p95 {p95 if p95 is not None else '-'} ms"
            )
    if url:
        lines.append(f"CI run: {url}")
    lines += ["", f"{TRAILER}: {url or ident}"]
    return subject, "\n".join(lines) + "\n"


def commit_rollback(
    project_dir: str,
    stack: str,
    verdict: Mapping,
    branch: str | None = None,
    remote: str = "origin",
    env: Mapping[str, str] | None = None,
    out: Callable[[str], object] = print,
    err: Callable[[str], object] = print,
) -> Report:
    """Commit the pointer revert the watch wrote and push it to `branch` (default: the remote's
    default branch, else main): DONE. On a refused push: a rollback branch, a pull request,
    FAILED. Raises `Refused` (nothing changed) unless the only change is that revert, and
    `GitError` when a git command fails."""
    env = dict(os.environ if env is None else env)
    git = Git(project_dir, env)
    try:
        top = git("rev-parse", "--show-toplevel").stdout.strip()
    except GitError as e:
        raise Refused(f"{project_dir} is not a git checkout: {e}") from None
    git = Git(top, env)
    path = os.path.relpath(os.path.join(project_dir, f"Pulumi.{stack}.yaml"), top)
    changes = _changes(git)
    others = sorted(p for p in changes if p != path)
    if others:
        raise Refused(
            f"the working tree has other changes than {path}: {', '.join(others)}; "
            "commit-rollback commits only the pointer revert"
        )
    if path not in changes:
        raise Refused(f"{path} is as HEAD has it: there is no pointer revert to commit")
    head = git("show", f"HEAD:{path}", check=False)
    if head.returncode != 0:
        raise Refused(f"{path} is not in HEAD: there is no pointer to revert")
    with open(os.path.join(top, path)) as f:
        tree = f.read()
    check_revert(head.stdout, tree, verdict, path)

    url = run_url(env)
    ident = env.get("GITHUB_RUN_ID") or time.strftime("%Y%m%d%H%M%S", time.gmtime())
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_RUN_ATTEMPT", "1") != "1":
        ident += f"-{env['GITHUB_RUN_ATTEMPT']}"  # a re-run's branch is a new one
    subject, body = message(stack, verdict, url, ident)
    branch = branch or _default_branch(git, remote)
    who = _identity(git)
    git(*who, "commit", "-q", "-m", subject, "-m", body, "--", path)
    sha = git("rev-parse", "HEAD").stdout.strip()
    out(f"committed {sha[:12]}: {subject}")

    pushed = git("push", remote, f"HEAD:refs/heads/{branch}", check=False)
    if pushed.returncode == 0:
        out(f"pushed the rollback to {remote}/{branch}: the repository and the stack agree")
        return Report(Outcome.DONE)
    refusal = (pushed.stderr or pushed.stdout).strip()
    side = f"{BRANCH_PREFIX}{verdict['from']}-to-{verdict['to']}-{ident}"
    side_push = git("push", remote, f"HEAD:refs/heads/{side}", check=False)
    if side_push.returncode != 0:
        err(
            _loud(
                stack,
                verdict,
                f"pushing to {branch} was refused and so was pushing the branch {side}:\n"
                f"{(side_push.stderr or side_push.stdout).strip()}\n"
                f"The commit {sha[:12]} is only in this checkout: push it and merge it into "
                f"{branch} by hand.",
            )
        )
        return Report(Outcome.FAILED, f"pushing to {branch} and to {side} was refused")
    pr_body = (
        f"{body}\n---\nThe {stack} stack already runs {verdict['to']}: `bluegreen watch` rolled "
        f"it back. Pushing this revert to {branch} was refused:\n\n```\n{refusal}\n```\n\n"
        f"Until this is merged, {branch} names {verdict['from']} while the stack serves "
        f"{verdict['to']}, and the next update of {stack} would move traffic back to it.\n"
    )
    made = None
    if _has_gh(env):
        made = subprocess.run(
            ["gh", "pr", "create", "--base", branch, "--head", side]
            + ["--title", subject, "--body", pr_body],
            cwd=top,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    if made is not None and made.returncode == 0:
        where = f"the pull request {made.stdout.strip()} (branch {side})"
    else:
        why = "no `gh` on PATH" if made is None else (made.stderr or made.stdout).strip()
        where = (
            f"the branch {side}; opening its pull request failed ({why}): open one from {side} "
            f"into {branch} by hand"
        )
    err(
        _loud(
            stack,
            verdict,
            f"pushing the revert to {branch} was refused:\n{refusal}\n"
            f"The revert is on {where}. Merge it to fix the repository.",
        )
    )
    return Report(Outcome.FAILED, f"pushing to {branch} was refused: the revert is on {side}")


def _loud(stack: str, verdict: Mapping, detail: str) -> str:
    bar = "!" * 78
    return (
        f"{bar}\n"
        f"THE {stack.upper()} STACK WAS ROLLED BACK ({verdict['from']} -> {verdict['to']}), "
        "BUT THE REPOSITORY STILL NAMES "
        f"{verdict['from'].upper()}.\nThe repository must be fixed: {detail}\n{bar}"
    )


def _changes(git: Git) -> set[str]:
    """Every path the working tree or the index changes, untracked files included (not ignored
    ones); a rename counts both its paths."""
    raw = git("status", "--porcelain=v1", "-z", "--untracked-files=all").stdout
    paths, items = set(), iter(raw.split("\0"))
    for item in items:
        if not item:
            continue
        paths.add(item[3:])
        if item[0] in "RC":
            paths.add(next(items, ""))
    return paths


def _default_branch(git: Git, remote: str) -> str:
    ref = git("symbolic-ref", "--quiet", f"refs/remotes/{remote}/HEAD", check=False)
    prefix = f"refs/remotes/{remote}/"
    name = ref.stdout.strip()
    return name.removeprefix(prefix) if ref.returncode == 0 and name else "main"


def _identity(git: Git) -> list[str]:
    """`-c` options naming the committer when git has no identity configured (a fresh runner)."""
    have = git("config", "user.email", check=False).stdout.strip()
    env = git.env or {}
    if have or env.get("GIT_AUTHOR_EMAIL") and env.get("GIT_COMMITTER_EMAIL"):
        return []
    return ["-c", "user.name=bluegreen", "-c", "user.email=bluegreen@users.noreply.github.com"]


def _has_gh(env: Mapping[str, str]) -> bool:
    return shutil.which("gh", path=env.get("PATH")) is not None
