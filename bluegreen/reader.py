"""Reading config keys: the one toolkit the core and every platform adapter validate keys with.

A `Reader` reads one stack's raw values (strings, as the engine passes them) and collects a
problem for every bad key, naming the key, the value and what is allowed. A method that finds a
problem records it and returns a stand-in of the right type, so that reading goes on and every
problem is reported at once; `check()` raises `ConfigError` before any stand-in can be used.

Keys that have a default are declared in Pulumi.yaml, so the engine (or `config.from_stack_config`)
always passes them: no default is written here. Keys without one are not declared there and read
as None until a stack file sets them (`optional`, `required`).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

NAMESPACE = "bluegreen"

Getter = Callable[[str], "str | None"]


class ConfigError(ValueError):
    """Config keys are invalid; the message names each key, its value and what is allowed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Alphabet:
    """What a value may hold. Values end up in nginx text, Nix text, shell words and HTTP headers:
    a strict alphabet keeps `;`, `{`, `}`, quotes and newlines out, so no value can inject
    configuration. The Nix modules check the same `pattern` with `types.strMatching`."""

    pattern: str
    """A regular expression the whole value must match (Python `re` and POSIX ERE alike)."""
    allowed: str
    """How a problem message says what is allowed."""

    def fits(self, value: str) -> bool:
        return isinstance(value, str) and re.fullmatch(self.pattern, value) is not None


VERSION = Alphabet(
    r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}",
    "1-64 characters of letters, digits and ._+- (e.g. v1.4.2)",
)
APP_NAME = Alphabet(
    r"[a-z][a-z0-9-]{0,31}", "lowercase letters, digits and '-', starting with a letter"
)
URL_PATH = Alphabet(r"/[A-Za-z0-9._~/-]{0,127}", "an absolute URL path of letters, digits, ._~/-")
STACK = Alphabet(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}", "a stack name such as live")
BANNER = Alphabet(
    r"[A-Za-z0-9 .,:!?()'/_-]{0,200}", "up to 200 letters, digits, spaces and .,:!?()'/_-"
)
HOST_NAME = Alphabet(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*",
    "a host name",
)


def is_host(value: str) -> bool:
    """An IP address or a DNS host name."""
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return HOST_NAME.fits(value)


class Reader:
    """One stack's raw config values, read key by key into typed values and problems."""

    def __init__(self, get: Getter, stack: str) -> None:
        self.get = get
        self.stack = stack
        self.problems: list[str] = []

    # --- problems ------------------------------------------------------------------------

    def problem(self, key: str, value: object, allowed: str) -> None:
        self.problems.append(f'{NAMESPACE}:{key} must be {allowed}, got "{value}"')

    def missing(self, key: str, why: str) -> None:
        """`why` follows "bluegreen:<key> is not set", e.g. ': the aws platform needs ...'."""
        self.problems.append(f"{NAMESPACE}:{key} is not set{why}")

    def check(self) -> None:
        """Raise `ConfigError` with every problem found so far, if there is one."""
        if self.problems:
            raise ConfigError(self.problems)

    def stop(self) -> NoReturn:
        """Nothing more can be read (the role or the platform is unknown): raise what was found."""
        raise ConfigError(self.problems or ["invalid config"])

    # --- raw values ----------------------------------------------------------------------

    def optional(self, key: str) -> str | None:
        """A key without a default: None unless the stack sets it."""
        return self.get(key)

    def required(self, key: str, why: str) -> str:
        """A key without a default that must be set here; "" (with a problem) when it is not."""
        value = self.get(key)
        if value is None:
            self.missing(key, why)
            return ""
        return value

    def declared(self, key: str) -> str:
        """A key Pulumi.yaml declares with a default, so it always has a value."""
        value = self.get(key)
        if value is None:
            self.missing(key, ": Pulumi.yaml declares its default; pass its defaults along")
            return ""
        return value

    # --- typed values --------------------------------------------------------------------

    def matching(self, key: str, alphabet: Alphabet, value: str | None = None) -> str:
        """`value` (default: the declared key's value) if it fits `alphabet`."""
        value = self.declared(key) if value is None else value
        if not alphabet.fits(value):
            self.problem(key, value, alphabet.allowed)
        return value

    def choice(
        self, key: str, options: Sequence[str], allowed: str, value: str | None = None
    ) -> str:
        """One of `options`: `value` (default: the declared key's value) or the first option."""
        value = self.declared(key) if value is None else value
        if value not in options:
            self.problem(key, value, allowed)
            return options[0]
        return value

    def integer(self, key: str, low: int, high: int) -> int:
        allowed = f"an integer from {low} to {high}"
        return self._within(key, self.declared(key), int, low, high, allowed)

    def port(self, key: str, raw: str | None = None) -> int:
        """A port an unprivileged process can listen on: the declared key's, or `raw`."""
        raw = self.declared(key) if raw is None else raw
        return self._within(key, raw, int, 1024, 65535, "an integer port from 1024 to 65535")

    def number(self, key: str, low: float, high: float, unit: str = "") -> float:
        allowed = f"a number{' of ' + unit if unit else ''} from {low:g} to {high:g}"
        return self._within(key, self.declared(key), float, low, high, allowed)

    def _within(self, key: str, raw: str, parse, low, high, allowed: str):
        try:
            value = parse(raw)
            if low <= value <= high:
                return value
        except ValueError:
            pass
        self.problem(key, raw, allowed)
        return low

    def flag(self, key: str) -> bool:
        raw = self.declared(key).lower()
        if raw not in ("true", "false"):
            self.problem(key, raw, "true or false")
        return raw == "true"

    def strings(self, key: str) -> tuple[str, ...]:
        """A JSON list of strings, or a comma-separated list; () when not set."""
        raw = self.optional(key)
        if raw is None:
            return ()
        try:
            value = json.loads(raw)
        except ValueError:
            value = [v.strip() for v in raw.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problems.append(f'{NAMESPACE}:{key} must be a list of strings, got "{raw}"')
            return ()
        return tuple(value)
