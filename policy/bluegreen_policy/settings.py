"""The policy pack's configuration: thresholds, gold requests, canary steps, freeze windows.

Read from the file given with `--policy-pack-config` (policy/config.json holds the defaults, and
the scripts always pass it). The engine merges one section per policy; this module checks each
section strictly, because the engine itself accepts unknown keys and impossible values: a typo in
a threshold must stop the gate, not quietly loosen it. Errors name `policy.key`, the value and
what is allowed (section_reader.py reads a section so).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bluegreen_policy import judge
from bluegreen_policy.section_reader import PolicyConfigError, Reader

SMOKE = "bluegreen-smoke-test"
WEIGHTS = "bluegreen-weights"
DNS = "bluegreen-dns-ttl"
ROLLBACK = "bluegreen-rollback-target"
LIVE_ARM = "bluegreen-no-deploy-to-live-arm"
FREEZE = "bluegreen-change-freeze"
MAINTENANCE = "bluegreen-maintenance-during-flip"
SCHEMA_APPLIED = "bluegreen-schema-applied"
CONTRACT_SAFE = "bluegreen-contract-safe"
EXPAND_SAFE = "bluegreen-expand-safe"
ALL_POLICIES = (
    SMOKE,
    WEIGHTS,
    DNS,
    ROLLBACK,
    LIVE_ARM,
    FREEZE,
    MAINTENANCE,
    SCHEMA_APPLIED,
    CONTRACT_SAFE,
    EXPAND_SAFE,
)


@dataclass(frozen=True)
class GoldRequest:
    path: str
    method: str = "GET"
    status: int = 200
    body_contains: str = ""


@dataclass(frozen=True)
class Smoke:
    tolerance: judge.Tolerance = judge.Tolerance()
    """Confidence, latency shift allowed (a share of the live median, at least a floor in ms) and
    error-rate increase allowed (blue_green_switchovers: p95 within +15%, errors at most 0.5%)."""
    scoring: judge.Scoring = judge.Scoring()
    samples: int = 800
    """Requests to each arm before the first look (about what a pass on errors needs at 95%)."""
    max_samples: int = 6400
    """Requests to each arm at most: still undecided there, the flip is refused (inconclusive)."""
    concurrency: int = 2
    sample_path: str = "/"
    timeout_seconds: float = 2.0
    gold_requests: tuple[GoldRequest, ...] = ()
    compare_arms: bool = True
    """False for a rollback: the arm going back must be ready, but is not compared with the one
    being escaped."""

    @property
    def looks(self) -> list[int]:
        return judge.schedule(self.samples, self.max_samples)


@dataclass(frozen=True)
class Weights:
    canary_steps: tuple[int, ...] = (5, 25, 50, 100)


@dataclass(frozen=True)
class Dns:
    max_ttl_seconds: int = 30  # TTL at most 30 s (blue_green_switchovers)


@dataclass(frozen=True)
class Window:
    name: str
    start: datetime
    end: datetime

    def describe(self) -> str:
        fmt = "%Y-%m-%d %H:%M UTC"
        return f'"{self.name}" ({self.start.strftime(fmt)} to {self.end.strftime(fmt)})'


@dataclass(frozen=True)
class Freeze:
    windows: tuple[Window, ...] = field(default_factory=tuple)

    def active(self, now: datetime) -> Window | None:
        return next((w for w in self.windows if w.start <= now < w.end), None)


RENAMED = {
    "p95Ratio": "latencyTolerance (a share of the live arm's median, 0.15 for +15%)",
    "p95AllowanceMs": "latencyFloorMs",
    "maxErrorRate": "errorTolerance (the increase over the live arm allowed)",
}
"""Keys of the p95 gate the statistical judge replaced, and what replaced them."""


def _gold(r: Reader) -> tuple[GoldRequest, ...]:
    gold: list[GoldRequest] = []
    raw_gold = r.raw.get("goldRequests", [])
    if not isinstance(raw_gold, list):
        r.bad("goldRequests", raw_gold, "a list of {path, method, status, bodyContains}")
        raw_gold = []
    for i, item in enumerate(raw_gold):
        key = f"goldRequests[{i}]"
        known = {"path", "method", "status", "bodyContains"}
        if not isinstance(item, Mapping) or set(item) - known:
            r.bad(key, item, "an object with path, method, status, bodyContains")
            continue
        path, method = item.get("path"), item.get("method", "GET")
        status, body = item.get("status", 200), item.get("bodyContains", "")
        if not isinstance(path, str) or not path.startswith("/"):
            r.bad(f"{key}.path", path, "a URL path starting with /")
        elif method not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            r.bad(f"{key}.method", method, "an HTTP method such as GET")
        elif not isinstance(status, int) or not 100 <= status <= 599:
            r.bad(f"{key}.status", status, "an HTTP status from 100 to 599")
        elif not isinstance(body, str):
            r.bad(f"{key}.bodyContains", body, "a string")
        else:
            gold.append(GoldRequest(path, method, status, body))
    return tuple(gold)


RULE_KEYS = {"group", "weight", "critical", "dryRun"}


def scoring(r: Reader) -> judge.Scoring:
    """`metrics` ({name: {group, weight, critical, dryRun}}), `groups` ({name: weight}),
    `passScore` and `marginalScore`: how the findings of one run make its verdict."""
    default = judge.Scoring()
    groups = r.raw.get("groups", dict(default.groups))
    if (
        not isinstance(groups, Mapping)
        or not groups
        or not all(
            isinstance(k, str)
            and k
            and isinstance(v, int | float)
            and not isinstance(v, bool)
            and v > 0
            for k, v in groups.items()
        )
    ):
        r.bad("groups", groups, "an object of group names to weights above 0")
        groups = dict(default.groups)
    metrics = r.raw.get("metrics", {})
    rules = []
    if not isinstance(metrics, Mapping):
        r.bad("metrics", metrics, f"an object keyed by metric ({', '.join(judge.METRICS)})")
        metrics = {}
    for name in metrics:
        if name not in judge.METRICS:
            r.bad(f"metrics.{name}", metrics[name], f"under a metric: {', '.join(judge.METRICS)}")
    for name in judge.METRICS:
        item = metrics.get(name, {})
        base = default.rule(name)
        key = f"metrics.{name}"
        if not isinstance(item, Mapping) or set(item) - RULE_KEYS:
            r.bad(key, item, "an object with group, weight, critical, dryRun")
            rules.append(base)
            continue
        group, weight = item.get("group", base.group or name), item.get("weight", base.weight)
        critical, dry = item.get("critical", base.critical), item.get("dryRun", base.dry_run)
        if group not in groups:
            r.bad(f"{key}.group", group, f"one of the groups ({', '.join(sorted(groups))})")
        elif isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            r.bad(f"{key}.weight", weight, "a number above 0")
        elif not isinstance(critical, bool):
            r.bad(f"{key}.critical", critical, "true or false")
        elif not isinstance(dry, bool):
            r.bad(f"{key}.dryRun", dry, "true or false")
        else:
            rules.append(judge.Rule(name, group, float(weight), critical, dry))
            continue
        rules.append(base)
    if all(rule.dry_run for rule in rules):
        r.bad("metrics", metrics, "at least one metric that is not a dry run")
    pass_score = r.number("passScore", default.pass_score, 1, 100)
    marginal = r.number("marginalScore", default.marginal_score, 0, 100)
    if marginal > pass_score:
        r.bad("marginalScore", marginal, f"at most passScore ({pass_score:g})")
    return judge.Scoring(tuple(rules), dict(groups), pass_score, marginal)


def tolerance(r: Reader) -> judge.Tolerance:
    default = judge.Tolerance()
    return judge.Tolerance(
        confidence=r.number("confidence", default.confidence, 0.8, 0.999),
        latency_ratio=r.number("latencyTolerance", default.latency_ratio, 0.0, 10.0),
        latency_floor_ms=r.number("latencyFloorMs", default.latency_floor_ms, 0.0, 10000.0),
        error_points=r.number("errorTolerance", default.error_points, 0.0, 0.5),
    )


def smoke(raw: Mapping[str, Any]) -> Smoke:
    r = Reader(
        SMOKE,
        raw,
        {
            "confidence",
            "latencyTolerance",
            "latencyFloorMs",
            "errorTolerance",
            "metrics",
            "groups",
            "passScore",
            "marginalScore",
            "samples",
            "maxSamples",
            "concurrency",
            "samplePath",
            "timeoutSeconds",
            "goldRequests",
            "compareArms",
        },
        RENAMED,
    )
    d = Smoke()
    samples = r.number("samples", d.samples, 20, 100_000, integer=True)
    cap = r.number("maxSamples", d.max_samples, 20, 100_000, integer=True)
    if cap < samples:
        r.bad("maxSamples", cap, f"at least samples ({samples})")
    result = Smoke(
        tolerance=tolerance(r),
        scoring=scoring(r),
        samples=samples,
        max_samples=max(cap, samples),
        concurrency=r.number("concurrency", d.concurrency, 1, 64, integer=True),
        sample_path=r.string("samplePath", d.sample_path),
        timeout_seconds=r.number("timeoutSeconds", d.timeout_seconds, 0.1, 60.0),
        gold_requests=_gold(r),
        compare_arms=r.flag("compareArms", True),
    )
    r.done()
    return result


def weights(raw: Mapping[str, Any]) -> Weights:
    r = Reader(WEIGHTS, raw, {"canarySteps"})
    steps = r.raw.get("canarySteps", list(Weights().canary_steps))
    valid = (
        isinstance(steps, list)
        and steps
        and all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 100 for s in steps)
        and steps == sorted(set(steps))
        and steps[-1] == 100
    )
    if not valid:
        r.bad("canarySteps", steps, "increasing integers from 1 to 100 that end with 100")
        steps = list(Weights().canary_steps)
    r.done()
    return Weights(tuple(steps))


def dns(raw: Mapping[str, Any]) -> Dns:
    r = Reader(DNS, raw, {"maxTtlSeconds"})
    result = Dns(r.number("maxTtlSeconds", Dns().max_ttl_seconds, 1, 3600, integer=True))
    r.done()
    return result


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def freeze(raw: Mapping[str, Any]) -> Freeze:
    r = Reader(FREEZE, raw, {"windows"})
    windows = []
    raw_windows = r.raw.get("windows", [])
    if not isinstance(raw_windows, list):
        r.bad("windows", raw_windows, "a list of {name, start, end} in UTC")
        raw_windows = []
    for i, item in enumerate(raw_windows):
        key = f"windows[{i}]"
        if not isinstance(item, Mapping) or set(item) != {"name", "start", "end"}:
            r.bad(key, item, 'an object {"name", "start", "end"} with ISO 8601 UTC times')
            continue
        start, end = _time(item["start"]), _time(item["end"])
        if start is None or end is None:
            r.bad(key, item, "ISO 8601 times such as 2026-12-24T00:00:00Z")
        elif end <= start:
            r.bad(f"{key}.end", item["end"], f"after its start {item['start']}")
        else:
            windows.append(Window(str(item["name"]), start, end))
    r.done()
    return Freeze(tuple(windows))


def no_settings(policy: str, raw: Mapping[str, Any]) -> None:
    Reader(policy, raw, set()).done()


def check_file(path: str) -> list[str]:
    """Every problem in a policy config file, including sections for policies that do not exist."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        return [f"{path}: {err}"]
    if not isinstance(data, dict):
        return [f"{path}: must be a JSON object keyed by policy name"]
    problems = []
    parsers = {SMOKE: smoke, WEIGHTS: weights, DNS: dns, FREEZE: freeze}
    for name, section in data.items():
        if name == "all":
            continue
        if name not in ALL_POLICIES:
            problems.append(
                f"{path}: {name} is not a policy of this pack (policies: {', '.join(ALL_POLICIES)})"
            )
            continue
        if isinstance(section, str):
            continue  # an enforcement level alone
        try:
            parsers.get(name, lambda raw, n=name: no_settings(n, raw))(section)
        except PolicyConfigError as err:
            problems.extend(err.problems)
    return problems
