"""The project's stacks through Pulumi's Automation API, for the `bluegreen` command, the demo, the
benches and the end-to-end tests.

Every step is shown before it runs as the `pulumi` command a person would type for it (with
`echo`). Steps and policy violations of a preview or an update come from the engine's events,
never from its text output.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pulumi import automation as auto

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Violation:
    """One policy violation as the engine reported it."""

    policy: str
    level: str
    """mandatory (the update was refused) or advisory (a warning)."""
    message: str
    resource: str
    """URN of the resource the policy judged."""


@dataclass
class Outcome:
    """The engine events of one preview, update or destroy."""

    events: list[auto.EngineEvent] = field(default_factory=list)

    @property
    def violations(self) -> list[Violation]:
        return [
            Violation(
                policy=e.policy_name,
                level=e.enforcement_level,
                # The engine puts the policy's description before the violation itself.
                message=e.message.strip().split("\n", 1)[-1],
                resource=e.resource_urn or "",
            )
            for e in (ev.policy_event for ev in self.events)
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
            meta = ev.resource_pre_event.metadata if ev.resource_pre_event else None
            op = meta.op.value if meta else None
            if op not in (None, "same", "read", "refresh"):
                found.add((op, meta.urn))
        return found


@dataclass
class Result:
    """What one command did: its output, exit code and engine events."""

    command: str
    """As a person would type it."""
    stdout: str
    stderr: str
    returncode: int
    outcome: Outcome = field(default_factory=Outcome)


class PulumiError(RuntimeError):
    def __init__(self, result: Result) -> None:
        self.result = result
        self.outcome = result.outcome
        super().__init__(
            f"`{result.command}` failed (exit {result.returncode}):\n{self.output.strip()}"
        )

    @property
    def output(self) -> str:
        return "\n".join(s for s in (self.result.stdout, self.result.stderr) if s)

    @property
    def summary(self) -> str:
        """The engine's error lines (not the diff that precedes them), for a flip log."""
        lines = [ln.strip() for ln in self.output.splitlines() if ln.strip().startswith("error:")]
        return "\n".join(lines) or self.output.strip()[-500:]


class NoSuchStack(LookupError):
    def __init__(self, stack: str) -> None:
        self.stack = stack
        super().__init__(f'no stack named "{stack}"')


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


@contextlib.contextmanager
def _interrupt_after() -> Iterator[None]:
    """Hold a Ctrl-C until the running pulumi command has exited, then raise it.

    A terminal's Ctrl-C reaches pulumi too (one process group), which cancels cleanly; raised
    here at once, it would leave the Automation API's output readers failing on closed pipes."""
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


def _exit_code(err: auto.CommandError) -> int:
    """The CLI's exit code, which the Automation API keeps only in the error's text."""
    found = re.match(r"\s*code: (-?\d+)", str(err))
    return int(found.group(1)) if found else 1


def _value(value: str) -> list[str]:
    """A config value as typed: after `--` when it would read as a flag."""
    return ["--", value] if value.startswith("-") else [value]


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
    _cli: auto.PulumiCommand | None = field(default=None, repr=False, compare=False)
    _stacks: dict[str, auto.Stack] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def with_env(self, extra: dict[str, str]) -> Workspace:
        """The same project with more environment, e.g. for the policy pack of one flip."""
        return Workspace(
            self.project_dir, {**self.env, **extra}, self.echo, self.policy_pack, self._command()
        )

    # --- the Automation API's objects ------------------------------------------------------

    def _command(self) -> auto.PulumiCommand:
        """The `pulumi` on this environment's PATH (the Automation API checks its version)."""
        with self._lock:
            if self._cli is None:
                found = shutil.which("pulumi", path=self.env.get("PATH"))
                if not found:
                    raise FileNotFoundError("no `pulumi` on PATH: run scripts/bootstrap")
                bin_dir = os.path.dirname(os.path.realpath(found))
                if os.path.basename(bin_dir) == "bin":  # the Automation API runs <root>/bin/pulumi
                    self._cli = auto.PulumiCommand(root=os.path.dirname(bin_dir))
                else:
                    self._cli = auto.PulumiCommand()
            return self._cli

    def _workspace(self) -> auto.LocalWorkspace:
        return auto.LocalWorkspace(
            work_dir=self.project_dir, env_vars=self.env, pulumi_command=self._command()
        )

    def _stack(self, name: str, create: bool = False) -> auto.Stack:
        with self._lock:
            found = self._stacks.get(name)
        if found is None:
            typed = self._say("stack", "select", *(["--create"] if create else []), "--stack", name)
            init = auto.Stack.create_or_select if create else auto.Stack.select
            try:
                found = self._call(typed, init, name, self._workspace())
            except PulumiError as err:
                if isinstance(err.__cause__, auto.StackNotFoundError):
                    raise NoSuchStack(name) from None
                raise
            with self._lock:
                self._stacks[name] = found
        return found

    def _say(self, *args: str) -> str:
        typed = shlex.join(["pulumi", *args])
        if self.echo:
            print("$ " + typed, file=sys.stderr, flush=True)
        return typed

    def _call(self, typed: str, fn: Callable, *args, **kwargs):
        try:
            with _interrupt_after():
                return fn(*args, **kwargs)
        except auto.CommandError as err:
            raise PulumiError(Result(typed, "", str(err).strip(), _exit_code(err))) from err

    # --- previews and updates --------------------------------------------------------------

    def _policy(self, config: str | None) -> tuple[list[str], dict[str, list[str]]]:
        """The policy pack flags as typed, and as the Automation API takes them."""
        if not self.policy_pack:
            return [], {}
        if config is None:
            default = os.path.join(self.policy_pack, "config.json")
            config = default if os.path.exists(os.path.join(self.project_dir, default)) else None
        typed = ["--policy-pack", self.policy_pack]
        kwargs = {"policy_packs": [self.policy_pack]}
        if config:
            typed += ["--policy-pack-config", config]
            kwargs["policy_pack_configs"] = [config]
        return typed, kwargs

    def _run(self, verb: str, stack: str, check: bool, policy_config: str | None, **flags):
        typed_flags = [f"--{k.replace('_', '-')}" for k, v in flags.items() if v]
        policy, packs = self._policy(policy_config) if verb != "destroy" else ([], {})
        yes = ["--yes"] if verb != "preview" else []
        run = getattr(self._stack(stack), verb)
        typed = self._say(verb, "--stack", stack, *yes, *typed_flags, *policy)
        outcome, out, err = Outcome(), [], []
        try:
            with _interrupt_after():
                run(
                    color="never",
                    on_output=out.append,
                    on_error=err.append,
                    on_event=outcome.events.append,
                    **{k: v for k, v in flags.items() if v},
                    **packs,
                )
            code = 0
        except auto.CommandError as error:
            code = _exit_code(error)
        result = Result(typed, "\n".join(out), "\n".join(err), code, outcome)
        if check and code != 0:
            raise PulumiError(result)
        return result

    def up(
        self,
        stack: str,
        *,
        diff: bool = False,
        expect_no_changes: bool = False,
        policy_config: str | None = None,
        check: bool = True,
    ) -> Result:
        """`pulumi up`, with the policy pack (its config.json, or `policy_config`)."""
        return self._run(
            "up", stack, check, policy_config, diff=diff, expect_no_changes=expect_no_changes
        )

    def preview(
        self,
        stack: str,
        *,
        diff: bool = False,
        expect_no_changes: bool = False,
        policy_config: str | None = None,
        check: bool = True,
    ) -> Result:
        return self._run(
            "preview", stack, check, policy_config, diff=diff, expect_no_changes=expect_no_changes
        )

    def destroy(self, stack: str, check: bool = True) -> Result:
        return self._run("destroy", stack, check, None)

    # --- stacks, config and outputs --------------------------------------------------------

    def ensure_stack(self, stack: str) -> None:
        self._stack(stack, create=True)

    def stacks(self) -> list[str]:
        typed = self._say("stack", "ls", "--json")
        return sorted(s.name for s in self._call(typed, self._workspace().list_stacks))

    def config_set(self, stack: str, key: str, value: str) -> None:
        s = self._stack(stack)
        typed = self._say("config", "set", "--stack", stack, key, *_value(value))
        self._call(typed, s.set_config, key, auto.ConfigValue(value))

    def config_set_secret(self, stack: str, key: str, value: str) -> None:
        s = self._stack(stack)
        typed = self._say("config", "set", "--secret", "--stack", stack, key, "[secret]")
        self._call(typed, s.set_config, key, auto.ConfigValue(value, True))

    def config_rm(self, stack: str, key: str) -> None:
        s = self._stack(stack)
        typed = self._say("config", "rm", "--stack", stack, key)
        self._call(typed, s.remove_config, key)

    def config_get(self, stack: str, key: str) -> str | None:
        """The value, or None when the key (or the stack) is not there."""
        try:
            s = self._stack(stack)
            typed = self._say("config", "get", "--stack", stack, key)
            return self._call(typed, s.get_config, key).value
        except (PulumiError, NoSuchStack):
            return None

    def config(self, stack: str) -> dict[str, str]:
        """All of a stack's config, secrets decrypted, keyed with their namespace."""
        s = self._stack(stack)
        typed = self._say("config", "--stack", stack, "--json", "--show-secrets")
        return {key: value.value for key, value in self._call(typed, s.get_all_config).items()}

    def file_config(self, stack: str) -> dict[str, str]:
        """What the stack's own file (Pulumi.<stack>.yaml) sets in plain text, without the
        defaults Pulumi.yaml declares (which `config` includes)."""
        try:
            settings = self._workspace().stack_settings(stack)
        except FileNotFoundError:
            return {}
        return {
            key: str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in (settings.config or {}).items()
            if isinstance(value, str | int | float | bool)
        }

    def outputs(self, stack: str) -> dict:
        """The stack's last outputs; empty when it was never deployed (or does not exist)."""
        try:
            s = self._stack(stack)
            typed = self._say("stack", "output", "--stack", stack, "--json", "--show-secrets")
            return {k: v.value for k, v in self._call(typed, s.outputs).items()}
        except (PulumiError, NoSuchStack):
            return {}


def timed(fn, *args, **kwargs):
    """Call fn and return (result, seconds)."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start
