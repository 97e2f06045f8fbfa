"""Drives the real `pulumi` CLI for the operator scripts, the demo, the benches and the e2e tests.

It shells out to the CLI (rather than the Automation API) so that what the scripts do is exactly
what a person types, and every command it runs is printed as such.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PulumiError(RuntimeError):
    def __init__(self, args: list[str], result: subprocess.CompletedProcess) -> None:
        self.result = result
        output = (result.stdout or "") + (result.stderr or "")
        super().__init__(f"`{' '.join(args)}` failed (exit {result.returncode}):\n{output.strip()}")

    @property
    def output(self) -> str:
        return (self.result.stdout or "") + (self.result.stderr or "")


def toolchain_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment scripts/env sets up, for callers that did not source it."""
    env = dict(os.environ if base is None else base)
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        version = next(line.split("==")[1].strip() for line in f if line.startswith("pulumi=="))
    cache = env.get("BLUEGREEN_CACHE") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME", "/root"), ".cache"),
        "bluegreen",
    )
    bin_dir = os.path.join(cache, f"pulumi-v{version}", "bin")
    env["PATH"] = os.pathsep.join(
        [bin_dir, os.path.join(ROOT, ".venv", "bin"), env.get("PATH", "")]
    )
    if "PULUMI_BACKEND_URL" not in env:
        os.makedirs(os.path.join(ROOT, ".pulumi-state"), exist_ok=True)
        env["PULUMI_BACKEND_URL"] = "file://" + os.path.join(ROOT, ".pulumi-state")
    if "PULUMI_CONFIG_PASSPHRASE_FILE" not in env:
        env.setdefault("PULUMI_CONFIG_PASSPHRASE", "bluegreen-local")
    env["PULUMI_SKIP_UPDATE_CHECK"] = "1"
    env["PULUMI_DIY_BACKEND_NO_LEGACY_WARNING"] = "1"
    return env


@dataclass
class Workspace:
    """A project directory plus the environment (backend, passphrase) its stacks live in."""

    project_dir: str = ROOT
    env: dict[str, str] = field(default_factory=toolchain_env)
    echo: bool = False
    policy_pack: str | None = None
    """Directory of the policy pack to pass to every preview and up (its config.json too)."""

    def run(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        cmd = ["pulumi", *args]
        if self.echo:
            print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
        result = subprocess.run(
            cmd,
            cwd=self.project_dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise PulumiError(cmd, result)
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

    def up(self, stack: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(
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
        )

    def preview(self, stack: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(
            "preview",
            "-s",
            stack,
            "--non-interactive",
            "--color=never",
            *self._policy(),
            *extra,
            check=check,
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
