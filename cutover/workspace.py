"""Drives the real `pulumi` CLI for the operator scripts, the demo, the benches and the e2e tests.

It shells out to the CLI (rather than the Automation API) so that what the scripts do is exactly
what a person types, and every command it runs is printed as such.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Violation:
    """One policy violation as the engine reported it (from the update's event log)."""

    policy: str
    level: str
    """mandatory (the update was refused) or advisory (a warning)."""
    message: str
    resource: str
    """URN of the resource the policy judged."""


@dataclass
class Outcome:
    """What one `pulumi preview` or `pulumi up` did, from its engine event log."""

    events: list[dict] = field(default_factory=list)

    @property
    def violations(self) -> list[Violation]:
        return [
            Violation(
                policy=e["policyName"],
                level=e.get("enforcementLevel", ""),
                # The engine puts the policy's description before the violation itself.
                message=e.get("message", "").strip().split("\n", 1)[-1],
                resource=e.get("resourceUrn", ""),
            )
            for e in (ev.get("policyEvent") for ev in self.events)
            if e
        ]

    def records(self) -> list[dict[str, str]]:
        """The violations as a flip log stores them."""
        return [
            {"policy": v.policy, "level": v.level, "message": v.message} for v in self.violations
        ]

    @property
    def steps(self) -> set[tuple[str, str]]:
        """(operation, URN) of every resource the run changes (or, in a preview, would change);
        unchanged and read-only resources are left out."""
        found = set()
        for ev in self.events:
            meta = (ev.get("resourcePreEvent") or {}).get("metadata") or {}
            if meta.get("op") not in (None, "same", "read", "refresh"):
                found.add((meta["op"], meta["urn"]))
        return found

    @classmethod
    def read(cls, path: str) -> Outcome:
        try:
            with open(path) as f:
                return cls([json.loads(line) for line in f if line.strip()])
        except OSError:
            return cls()


class PulumiError(RuntimeError):
    def __init__(
        self, args: list[str], result: subprocess.CompletedProcess, outcome: Outcome | None = None
    ) -> None:
        self.result = result
        self.outcome = outcome or Outcome()
        output = (result.stdout or "") + (result.stderr or "")
        super().__init__(f"`{' '.join(args)}` failed (exit {result.returncode}):\n{output.strip()}")

    @property
    def summary(self) -> str:
        """The engine's error lines (not the diff that precedes them), for a flip log."""
        lines = [ln.strip() for ln in self.output.splitlines() if ln.strip().startswith("error:")]
        return "\n".join(lines) or self.output.strip()[-500:]

    @property
    def output(self) -> str:
        return (self.result.stdout or "") + (self.result.stderr or "")


def toolchain_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment `source scripts/env` sets up, for callers that did not source it.

    scripts/env is the one home of these facts (where the CLI build is cached, the backend, the
    passphrase); this asks it rather than repeating them."""
    env = dict(os.environ if base is None else base)
    result = subprocess.run(
        ["bash", "-c", 'source "$1" && env -0', "bash", os.path.join(ROOT, "scripts", "env")],
        env=env,
        capture_output=True,
        check=True,
        timeout=30,
    )
    pairs = (item.split(b"=", 1) for item in result.stdout.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode() for k, v in pairs}


@dataclass
class Workspace:
    """A project directory plus the environment (backend, passphrase) its stacks live in."""

    project_dir: str = ROOT
    env: dict[str, str] = field(default_factory=toolchain_env)
    echo: bool = False
    policy_pack: str | None = None
    """Directory of the policy pack to pass to every preview and up (its config.json too)."""

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 300,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        cmd = ["pulumi", *args]
        if self.echo:
            print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
        result = subprocess.run(
            cmd,
            cwd=self.project_dir,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise PulumiError(cmd, result)
        return result

    def run_logged(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """Run a preview or an update with an engine event log (what the Automation API reads
        too): its steps and policy violations come back as data (`result.outcome`, or the
        error's), not as text to scrape."""
        fd, path = tempfile.mkstemp(prefix="bluegreen-events-", suffix=".jsonl")
        os.close(fd)
        try:
            # --event-log is offered only with PULUMI_DEBUG_COMMANDS, as the Automation API sets it.
            env = {"PULUMI_DEBUG_COMMANDS": "true", **(env or {})}
            result = self.run(*args, "--event-log", path, check=False, env=env)
            outcome = Outcome.read(path)
        finally:
            os.unlink(path)
        if check and result.returncode != 0:
            raise PulumiError(["pulumi", *args], result, outcome)
        result.outcome = outcome  # type: ignore[attr-defined]
        return result

    def _policy(self) -> list[str]:
        if not self.policy_pack:
            return []
        args = ["--policy-pack", self.policy_pack]
        config = os.path.join(self.project_dir, self.policy_pack, "config.json")
        if os.path.exists(config):
            args += ["--policy-pack-config", config]
        return args

    def ensure_stack(self, stack: str) -> None:
        self.run("stack", "select", "--create", stack)

    def up(
        self, stack: str, *extra: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        return self.run_logged(
            "up",
            "-s",
            stack,
            "--yes",
            "--skip-preview",
            "--non-interactive",
            "--color=never",
            *self._policy(),
            *extra,
            check=check,
            env=env,
        )

    def preview(
        self, stack: str, *extra: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        return self.run_logged(
            "preview",
            "-s",
            stack,
            "--non-interactive",
            "--color=never",
            *self._policy(),
            *extra,
            check=check,
            env=env,
        )

    def destroy(self, stack: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(
            "destroy",
            "-s",
            stack,
            "--yes",
            "--skip-preview",
            "--non-interactive",
            "--color=never",
            check=check,
        )

    def config_set(self, stack: str, key: str, value: str) -> None:
        self.run("config", "set", "-s", stack, key, "--", value)

    def config_set_secret(self, stack: str, key: str, value: str) -> None:
        self.run("config", "set", "--secret", "-s", stack, key, "--", value)

    def config_get(self, stack: str, key: str) -> str | None:
        result = self.run("config", "get", "-s", stack, key, check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    def outputs(self, stack: str) -> dict:
        result = self.run("stack", "output", "-s", stack, "--json", check=False)
        return json.loads(result.stdout or "{}") if result.returncode == 0 else {}


def timed(fn, *args, **kwargs):
    """Call fn and return (result, seconds)."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start
