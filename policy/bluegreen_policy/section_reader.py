"""Reading one policy's section of the pack's config strictly: every problem named `policy.key`,
with the value and what is allowed (settings.py says what each section holds)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

ENGINE_KEYS = {"enforcementLevel"}
"""Keys the engine reads from every section itself."""


def plain(value: Any) -> Any:
    """Values arrive as proxies in the engine's camelCase, numbers as floats: normalise once."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class PolicyConfigError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("policy config is invalid: " + "; ".join(problems))


class Reader:
    """Reads one policy's section, recording every problem with its `policy.key` name."""

    def __init__(
        self,
        policy: str,
        raw: Mapping[str, Any],
        allowed: set[str],
        renamed: Mapping[str, str] | None = None,
    ) -> None:
        """`renamed`: keys this section no longer takes, each with what replaced it."""
        self.policy, self.raw, self.problems = policy, plain(raw), []
        renamed = renamed or {}
        for key in sorted(set(self.raw) - allowed - ENGINE_KEYS):
            if key in renamed:
                self.problems.append(f"{policy}.{key} is no longer a setting: use {renamed[key]}")
                continue
            self.problems.append(
                f"{policy}.{key} is not a known setting (allowed: {', '.join(sorted(allowed))})"
            )

    def bad(self, key: str, value: Any, allowed: str) -> None:
        self.problems.append(f"{self.policy}.{key} must be {allowed}, got {json.dumps(value)}")

    def number(self, key: str, default: float, low: float, high: float, integer=False) -> Any:
        value = self.raw.get(key, default)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and integer and float(value) != int(value):
            ok = False
        if not ok or not low <= value <= high:
            kind = "an integer" if integer else "a number"
            self.bad(key, value, f"{kind} from {low:g} to {high:g}")
            return default
        return int(value) if integer else float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            self.bad(key, value, "true or false")
            return default
        return value

    def string(self, key: str, default: str) -> str:
        value = self.raw.get(key, default)
        if not isinstance(value, str) or not value.startswith("/"):
            self.bad(key, value, "a URL path starting with /")
            return default
        return value

    def done(self) -> None:
        if self.problems:
            raise PolicyConfigError(self.problems)
