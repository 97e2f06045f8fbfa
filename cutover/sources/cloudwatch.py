"""The aws platform's metrics source: the live ALB's CloudWatch metrics, per arm target group.

The live stack's `metrics` output names the region, the ALB and each colour's target group by
their ARN suffixes (the form CloudWatch's dimensions take):

    {"source": "cloudwatch", "region": "eu-west-1",
     "loadBalancer": "app/shop-live/50dc6c495c0c9188",
     "targetGroups": {"blue": "targetgroup/blue-tg/0123456789abcdef", "green": ...}}
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterable, Mapping

import boto3
import botocore.exceptions

from cutover.sources.interface import ColorStats, Stats, Unreachable

NAMESPACE = "AWS/ApplicationELB"
PERIOD = 60
"""Seconds: the resolution of the ALB's metrics, and so of every window read here."""

FIGURES = {
    "requests": ("RequestCount", "Sum"),
    "errors": ("HTTPCode_Target_5XX_Count", "Sum"),
    "unanswered": ("TargetConnectionErrorCount", "Sum"),
    "p95": ("TargetResponseTime", "p95"),
}
"""What is read per target group: (CloudWatch metric, statistic). `errors` and `unanswered`
(requests the ALB could not hand to a target: a crashed arm) both count as errors."""

_FAILURES = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


class CloudWatchSource:
    """The live ALB's metrics in CloudWatch (namespace AWS/ApplicationELB), per target group:
    RequestCount and HTTPCode_Target_5XX_Count plus TargetConnectionErrorCount (Sum), and
    TargetResponseTime (p95, seconds, reported in ms), through `cloudwatch.get_metric_data` with
    the AWS credentials of the environment (it needs cloudwatch:GetMetricData).

    The ALB publishes these at 60 s resolution: a datapoint covers one whole minute, aligned to
    the minute, and cannot be split. `read()` therefore counts only the minutes that begin at or
    after `start()` (the minute `start()` falls in also holds traffic from before it, which is
    not the hold's), up to the minute now runs in, as one period so that CloudWatch computes the
    p95 over all of them. A window that has not yet reached the next whole minute reads as no
    traffic, and CloudWatch shows a minute a minute or two after it ends: on aws a hold sees
    traffic only after about two minutes, and a shorter one ends inconclusive (no data is not a
    pass; `--hold 3m` is a good start).
    """

    RECENT_S = 300
    """The baseline before a flip: the last five whole minutes."""

    def __init__(
        self,
        region: str,
        load_balancer: str,
        target_groups: Mapping[str, str],
        client=None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.region = region
        self.load_balancer = load_balancer
        self.target_groups = dict(target_groups)
        self.describe = f"CloudWatch in {region} for the ALB {load_balancer}"
        try:
            self.client = client or boto3.client("cloudwatch", region_name=region)
        except _FAILURES as err:
            raise Unreachable(f"{self.describe} cannot be read: {err}") from None
        self.clock = clock
        self.start()

    @classmethod
    def from_output(cls, metrics: Mapping) -> CloudWatchSource:
        """The source the live stack's `metrics` output describes (see the module docstring)."""
        missing = [k for k in ("region", "loadBalancer", "targetGroups") if not metrics.get(k)]
        if missing:
            raise Unreachable(
                f"the live stack's cloudwatch metrics output has no {', '.join(missing)}: run "
                "`pulumi up -s live` once with this version of bluegreen"
            )
        return cls(metrics["region"], metrics["loadBalancer"], metrics["targetGroups"])

    # --- the protocol --------------------------------------------------------------------

    def check(self) -> None:
        """One real call (the last five minutes), so that missing credentials or permissions
        refuse the flip before the pointer moves."""
        end = math.floor(self.clock() / PERIOD) * PERIOD
        self._stats(end - self.RECENT_S, end, self.target_groups)

    def start(self) -> None:
        self.since = self.clock()

    def read(self) -> Stats:
        begin = math.ceil(self.since / PERIOD) * PERIOD
        end = math.ceil(self.clock() / PERIOD) * PERIOD
        if end <= begin:  # still in the minute start() fell in: nothing of the hold's alone yet
            return {c: ColorStats() for c in self.target_groups}
        return self._stats(begin, end, self.target_groups)

    def recent(self, color: str) -> ColorStats:
        end = math.floor(self.clock() / PERIOD) * PERIOD
        stats = self._stats(end - self.RECENT_S, end, [color])
        return stats.get(color, ColorStats())

    # --- CloudWatch ----------------------------------------------------------------------

    def queries(self, colors: Iterable[str], period: int) -> tuple[list[dict], dict]:
        """The MetricDataQueries for `colors`, and what each query's Id stands for."""
        queries, meaning = [], {}
        for i, color in enumerate(colors):
            dimensions = [
                {"Name": "TargetGroup", "Value": self.target_groups[color]},
                {"Name": "LoadBalancer", "Value": self.load_balancer},
            ]
            for figure, (metric, stat) in FIGURES.items():
                qid = f"c{i}_{figure}"
                meaning[qid] = (color, figure)
                queries.append(
                    {
                        "Id": qid,
                        "MetricStat": {
                            "Metric": {
                                "Namespace": NAMESPACE,
                                "MetricName": metric,
                                "Dimensions": dimensions,
                            },
                            "Period": period,
                            "Stat": stat,
                        },
                        "ReturnData": True,
                    }
                )
        return queries, meaning

    def _stats(self, begin: int, end: int, colors: Iterable[str]) -> Stats:
        """Each colour's figures over [begin, end), whole minutes, as one period."""
        colors = list(colors)
        queries, meaning = self.queries(colors, end - begin)
        request = {
            "MetricDataQueries": queries,
            "StartTime": dt.datetime.fromtimestamp(begin, dt.UTC),
            "EndTime": dt.datetime.fromtimestamp(end, dt.UTC),
        }
        values: dict[str, list[float]] = {qid: [] for qid in meaning}
        try:
            while True:
                answer = self.client.get_metric_data(**request)
                for result in answer.get("MetricDataResults", []):
                    status = result.get("StatusCode", "Complete")
                    if status in ("Forbidden", "InternalError"):
                        raise Unreachable(
                            f"{self.describe} answered {status} for {result.get('Label') or ''} "
                            f"({result.get('Id')}): {answer.get('Messages') or ''}".strip()
                        )
                    if result.get("Id") in values:
                        values[result["Id"]].extend(result.get("Values", []))
                token = answer.get("NextToken")
                if not token:
                    break
                request["NextToken"] = token
        except botocore.exceptions.NoCredentialsError:
            raise Unreachable(
                f"{self.describe} cannot be read: no AWS credentials were found; run bluegreen "
                "with the credentials you deploy with (AWS_PROFILE or AWS_ACCESS_KEY_ID), "
                "allowed cloudwatch:GetMetricData"
            ) from None
        except _FAILURES as err:
            raise Unreachable(f"{self.describe} did not answer: {err}") from None

        figures: dict[str, dict[str, list[float]]] = {c: {} for c in colors}
        for qid, found in values.items():
            color, figure = meaning[qid]
            figures[color][figure] = found
        return {c: self._color(f) for c, f in figures.items()}

    @staticmethod
    def _color(figures: Mapping[str, list[float]]) -> ColorStats:
        p95 = figures.get("p95") or []
        return ColorStats(
            requests=round(sum(figures.get("requests", []))),
            errors=round(sum(figures.get("errors", [])) + sum(figures.get("unanswered", []))),
            # One period, so at most one value; the largest if CloudWatch ever splits it.
            p95_ms=max(p95) * 1000 if p95 else None,
        )
