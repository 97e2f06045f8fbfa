"""The project's stacks through the `pulumi` CLI, for the `bluegreen` command, the demo, the
benches and the end-to-end tests.

Every step is shown before it runs as the `pulumi` command a person would type for it (with
`echo`), and runs as exactly that command. Steps and policy violations of a preview or an update
come from the engine's event log, never from its text output (cutover/engine_events.py).

Why not the Automation API: it pays for more than a step needs, and in an incident the operator
pays it too. Each of its stacks starts with `pulumi stack select` (which also changes the stack
the user has selected), its `up` reads the outputs and the history once more after every update,
and its config and outputs come with `--show-secrets`, a passphrase key derivation each. Here each
command names its stack (`--stack`), config is read from the files it lives in (Pulumi.yaml's
defaults under Pulumi.<stack>.yaml) and a secret is decrypted only when asked for, by itself;
outputs are read without secrets, several stacks at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import yaml

from bluegreen.config import NAMESPACE, SECRET, project_defaults
from cutover.engine_events import EngineEvents, NoSuchStack, PulumiError, Result, read_events

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ECHO = threading.Lock()


def toolchain_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment `source scripts/env` sets up, for callers that did not source it.

    scripts/env is the one home of these facts (where the CLI build is cached, the backend, the
    passphrase); this asks it rather than repeating them."""
    env = dict(os.environ if base is None else base)
    if env.get("BLUEGREEN_ROOT") == ROOT and env.get("PULUMI_BIN") in env.get("PATH", ""):
        return env  # scripts/env was sourced for this checkout already: nothing to add
    result = subprocess.run(
        ["bash", "-c", 'source "$1" && env -0', "bash", os.path.join(ROOT, "scripts", "env")],
        env=env,
        capture_output=True,
        check=True,
        timeout=30,
    )
    pairs = (item.split(b"=", 1) for item in result.stdout.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode() for k, v in pairs}


@contextlib.contextmanager
def _interrupt_after() -> Iterator[None]:
    """Hold a Ctrl-C until the running pulumi command has exited, then raise it.

    A terminal's Ctrl-C reaches pulumi too (one process group), which cancels cleanly and
    releases the stack's lock; raised here at once, it would leave pulumi's output unread."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # Ctrl-C is not Python's to raise here (another thread, or ignored, or handled)
        return
    got: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if got:
            raise KeyboardInterrupt  # in place of the cancelled command's error


def _value(value: str) -> list[str]:
    """A config value as typed: after `--` when it would read as a flag."""
    return ["--", value] if value.startswith("-") else [value]


def _plain(value: object) -> str:
    """A config value as `pulumi config` prints it: booleans in lowercase, objects as JSON."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


@dataclass
class Workspace:
    """A project directory plus the environment (backend, passphrase) its stacks live in."""

    project_dir: str = ROOT
    env: dict[str, str] = field(default_factory=toolchain_env)
    """Set for every command, over this process's own environment."""
    echo: bool = False
    """Print each step to stderr, as the command a person would type, before running it."""
    policy_pack: str | None = None
    """Directory of the policy pack to pass to every preview and up (its config.json too)."""
    _binary: str | None = field(default=None, repr=False, compare=False)

    def with_env(self, extra: dict[str, str]) -> Workspace:
        """The same project with more environment, e.g. for the policy pack of one flip."""
        return Workspace(
            self.project_dir, {**self.env, **extra}, self.echo, self.policy_pack, self._binary
        )

    # --- running pulumi ---------------------------------------------------------------------

    def binary(self) -> str:
        """The `pulumi` this environment's PATH finds."""
        if self._binary is None:
            found = shutil.which("pulumi", path=self.env.get("PATH"))
            if not found:
                raise FileNotFoundError("no `pulumi` on PATH: run scripts/bootstrap")
            self._binary = found
        return self._binary

    def _say(self, args: list[str]) -> str:
        typed = shlex.join(["pulumi", *args])
        if self.echo:
            with _ECHO:  # one write per line: steps run at once must not mix their lines
                sys.stderr.write(f"$ {typed}\n")
                sys.stderr.flush()
        return typed

    def run(
        self,
        args: list[str],
        shown: list[str] | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        """`pulumi ARGS` in the project (`shown`: the same as a person would type it, when the
        real arguments hold a temporary file or a secret)."""
        typed = self._say(shown if shown is not None else args)
        with _interrupt_after():
            done = subprocess.run(
                [self.binary(), *args],
                cwd=self.project_dir,
                env={**os.environ, **self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
            )
        result = Result(typed, done.stdout, done.stderr, done.returncode)
        if check and done.returncode != 0:
            raise PulumiError(result)
        return result

    # --- previews and updates --------------------------------------------------------------

    def _policy(self, config: str | None) -> list[str]:
        """The policy pack flags: the pack, and its config.json or `config`."""
        if not self.policy_pack:
            return []
        if config is None:
            default = os.path.join(self.policy_pack, "config.json")
            config = default if os.path.exists(os.path.join(self.project_dir, default)) else None
        given = ["--policy-pack-config", config] if config else []
        return ["--policy-pack", self.policy_pack, *given]

    def _engine(
        self, verb: str, stack: str, check: bool, flags: list[str], policy: list[str]
    ) -> Result:
        # The event log is where the steps and the policy violations are, as structured data.
        with tempfile.TemporaryDirectory(prefix="bluegreen-events-") as tmp:
            log = os.path.join(tmp, "events.jsonl")
            args = [verb, "--stack", stack, *flags, *policy]
            hidden = ["--color", "never", "--non-interactive", "--event-log", log]
            # --event-log is one of the CLI's debug flags (the Automation API's way in too).
            debug = {"PULUMI_DEBUG_COMMANDS": "true"}
            result = self.run([*args, *hidden], shown=args, check=False, env=debug)
            result.outcome = EngineEvents(read_events(log))
        if check and result.returncode != 0:
            raise PulumiError(result)
        return result

    def up(
        self,
        stack: str,
        *,
        diff: bool = False,
        expect_no_changes: bool = False,
        policy_config: str | None = None,
        target: Iterable[str] = (),
        check: bool = True,
    ) -> Result:
        """`pulumi up --skip-preview`, with the policy pack (its config.json, or
        `policy_config`); `target`: only these URNs."""
        flags = ["--yes", "--skip-preview", *_flags(diff, expect_no_changes)]
        flags += [f"--target={urn}" for urn in target]
        return self._engine("up", stack, check, flags, self._policy(policy_config))

    def preview(
        self,
        stack: str,
        *,
        diff: bool = False,
        expect_no_changes: bool = False,
        policy_config: str | None = None,
        check: bool = True,
    ) -> Result:
        flags = _flags(diff, expect_no_changes)
        return self._engine("preview", stack, check, flags, self._policy(policy_config))

    def destroy(self, stack: str, check: bool = True) -> Result:
        return self._engine("destroy", stack, check, ["--yes", "--skip-preview"], [])

    # --- stacks ----------------------------------------------------------------------------

    def ensure_stack(self, stack: str) -> None:
        """Create the stack unless it is there; the user's selected stack stays as it was."""
        result = self.run(["stack", "init", "--no-select", "--stack", stack], check=False)
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise PulumiError(result)

    def stacks(self) -> list[str]:
        out = self.run(["stack", "ls", "--json"]).stdout
        return sorted(s["name"] for s in json.loads(out or "[]"))

    # --- config: read from the files, written by pulumi --------------------------------------

    def file_config(self, stack: str) -> dict[str, str]:
        """What the stack's own file (Pulumi.<stack>.yaml) sets, keyed with their namespace,
        without the defaults Pulumi.yaml declares; a secret reads as `SECRET`. Raises
        `NoSuchStack` when the project has no file for the stack."""
        path = os.path.join(self.project_dir, f"Pulumi.{stack}.yaml")
        try:
            with open(path) as f:
                values = (yaml.safe_load(f) or {}).get("config") or {}
        except FileNotFoundError:
            raise NoSuchStack(stack) from None
        return {
            key: SECRET if isinstance(v, dict) and set(v) == {"secure"} else _plain(v)
            for key, v in values.items()
        }

    def config(self, stack: str) -> dict[str, str]:
        """The stack's config as the engine gets it: Pulumi.yaml's defaults under what the
        stack's file sets, keyed with their namespace; a secret reads as `SECRET`."""
        declared = project_defaults(self.project_dir)
        defaults = {f"{NAMESPACE}:{key}": value for key, value in declared.items()}
        return {**defaults, **self.file_config(stack)}

    def config_get(self, stack: str, key: str) -> str | None:
        """The value, decrypted if it is a secret (by pulumi, that value alone); None when the
        key (or the stack) is not there."""
        try:
            value = self.config(stack).get(key)
        except NoSuchStack:
            return None
        if value != SECRET:
            return value
        result = self.run(["config", "get", "--stack", stack, key], check=False)
        return result.stdout.rstrip("\n") if result.returncode == 0 else None

    def set_config(self, stack: str, changes: Mapping[str, str | None]) -> None:
        """Write keys of the stack's config in one `pulumi config set-all` (plain text); None
        removes a key, in one `pulumi config rm-all` of the keys the file has."""
        have = self.file_config(stack)
        gone = [k for k, v in changes.items() if v is None and k in have]
        kept = {k: v for k, v in changes.items() if v is not None and have.get(k) != v}
        if kept:
            pairs = [a for k, v in kept.items() for a in ("--plaintext", f"{k}={v}")]
            self.run(["config", "set-all", "--stack", stack, *pairs])
        if gone:
            self.run(["config", "rm-all", "--stack", stack, *gone])

    def config_set(self, stack: str, key: str, value: str) -> None:
        self.run(["config", "set", "--stack", stack, key, *_value(value)])

    def config_set_secret(self, stack: str, key: str, value: str) -> None:
        args = ["config", "set", "--secret", "--stack", stack, key]
        self.run([*args, *_value(value)], shown=[*args, "[secret]"])

    def config_rm(self, stack: str, key: str) -> None:
        self.run(["config", "rm", "--stack", stack, key])

    # --- state ---------------------------------------------------------------------------

    def export(self, stack: str) -> dict:
        """The stack's deployment (`pulumi stack export`), secrets left encrypted."""
        return json.loads(self.run(["stack", "export", "--stack", stack]).stdout)

    def import_deployment(self, stack: str, deployment: dict) -> None:
        """`pulumi stack import` of a deployment `export` gave (the backend locks the stack for
        it: an update in progress makes it fail rather than be overwritten)."""
        with tempfile.TemporaryDirectory(prefix="bluegreen-state-") as tmp:
            path = os.path.join(tmp, "deployment.json")
            with open(path, "w") as f:
                json.dump(deployment, f)
            args = ["stack", "import", "--stack", stack, "--file"]
            self.run([*args, path], shown=[*args, "deployment.json"])

    # --- outputs ---------------------------------------------------------------------------

    def outputs(self, stack: str) -> dict:
        """The stack's last outputs, secrets left encrypted (shown as "[secret]"); empty when it
        was never deployed (or does not exist)."""
        result = self.run(["stack", "output", "--stack", stack, "--json"], check=False)
        if result.returncode != 0:
            return {}
        try:
            found = json.loads(result.stdout or "{}")
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}

    def outputs_of(self, stacks: Iterable[str]) -> dict[str, dict]:
        """Several stacks' outputs, read at once: one `pulumi stack output` each, in parallel."""
        names = list(dict.fromkeys(stacks))
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            return dict(zip(names, pool.map(self.outputs, names), strict=True))


def _flags(diff: bool, expect_no_changes: bool) -> list[str]:
    return ["--diff"] * diff + ["--expect-no-changes"] * expect_no_changes


def timed(fn, *args, **kwargs):
    """Call fn and return (result, seconds)."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start
