"""The aws platform's metrics source against botocore's Stubber: the exact GetMetricData request
the hold sends, and what it makes of the answer. No network, no AWS account."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.stub import Stubber

from cutover.sources import factory
from cutover.sources.cloudwatch import CloudWatchSource
from cutover.sources.interface import ColorStats, Unreachable

LB = "app/shop-live/50dc6c495c0c9188"
TGS = {
    "blue": "targetgroup/blue-tg/0123456789abcdef",
    "green": "targetgroup/green-tg/fedcba9876543210",
}
OUTPUT = {"source": "cloudwatch", "region": "eu-west-1", "loadBalancer": LB, "targetGroups": TGS}
T0 = 1_700_000_000.0  # 22:13:20 UTC: 20 s into a minute


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def client():
    return boto3.client(
        "cloudwatch",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def source():
    cw = client()
    clock = Clock(T0)
    with Stubber(cw) as stub:
        src = CloudWatchSource("eu-west-1", LB, TGS, client=cw, clock=clock)
        yield src, stub, clock
        stub.assert_no_pending_responses()


def utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def query(i: int, color: str, figure: str, metric: str, stat: str, period: int) -> dict:
    return {
        "Id": f"c{i}_{figure}",
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/ApplicationELB",
                "MetricName": metric,
                "Dimensions": [
                    {"Name": "TargetGroup", "Value": TGS[color]},
                    {"Name": "LoadBalancer", "Value": LB},
                ],
            },
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def expected(colors, begin: float, end: float) -> dict:
    period = int(end - begin)
    return {
        "MetricDataQueries": [
            q
            for i, c in enumerate(colors)
            for q in (
                query(i, c, "requests", "RequestCount", "Sum", period),
                query(i, c, "errors", "HTTPCode_Target_5XX_Count", "Sum", period),
                query(i, c, "unanswered", "TargetConnectionErrorCount", "Sum", period),
                query(i, c, "p95", "TargetResponseTime", "p95", period),
            )
        ],
        "StartTime": utc(begin),
        "EndTime": utc(end),
    }


def answer(values: dict[str, list[float]], begin: float) -> dict:
    return {
        "MetricDataResults": [
            {
                "Id": qid,
                "Label": qid,
                "Timestamps": [utc(begin)] * len(v),
                "Values": v,
                "StatusCode": "Complete",
            }
            for qid, v in values.items()
        ],
        "Messages": [],
    }


def test_a_hold_reads_whole_minutes_from_start_per_target_group(source):
    src, stub, clock = source
    src.start()  # at 22:13:20
    clock.now = T0 + 130  # 22:15:30
    begin, end = T0 + 40, T0 + 160  # 22:14:00 (the first minute after start) to 22:16:00
    values = {
        "c0_requests": [12.0],
        "c0_errors": [],
        "c0_unanswered": [],
        "c0_p95": [0.0042],
        "c1_requests": [480.0],
        "c1_errors": [7.0],
        "c1_unanswered": [2.0],
        "c1_p95": [0.0185],
    }
    stub.add_response("get_metric_data", answer(values, begin), expected(TGS, begin, end))
    stats = src.read()
    assert stats == {
        "blue": ColorStats(requests=12, errors=0, p95_ms=pytest.approx(4.2)),
        "green": ColorStats(requests=480, errors=9, p95_ms=pytest.approx(18.5)),
    }


def test_nothing_from_before_start_is_the_holds(source):
    """Within the minute start() fell in, CloudWatch's datapoint also holds earlier traffic:
    the hold reads no traffic yet, without asking (a window shorter than a period)."""
    src, stub, clock = source
    src.start()
    clock.now = T0 + 30  # 22:13:50, same minute
    assert src.read() == {"blue": ColorStats(), "green": ColorStats()}


def test_a_minute_without_traffic_is_0_requests_and_no_p95(source):
    src, stub, clock = source
    src.start()
    clock.now = T0 + 45  # 22:14:05: the minute from 22:14 has begun
    begin, end = T0 + 40, T0 + 100
    empty = {f"c{i}_{f}": [] for i in (0, 1) for f in ("requests", "errors", "unanswered", "p95")}
    stub.add_response("get_metric_data", answer(empty, begin), expected(TGS, begin, end))
    stats = src.read()
    assert stats == {"blue": ColorStats(0, 0, None), "green": ColorStats(0, 0, None)}


def test_the_baseline_is_the_last_five_whole_minutes_of_one_colour(source):
    src, stub, _ = source
    end = T0 - 20  # 22:13:00
    values = {"c0_requests": [3000.0], "c0_errors": [1.0], "c0_unanswered": [], "c0_p95": [0.012]}
    stub.add_response(
        "get_metric_data", answer(values, end - 300), expected(["blue"], end - 300, end)
    )
    assert src.recent("blue") == ColorStats(requests=3000, errors=1, p95_ms=pytest.approx(12.0))


def test_pages_of_an_answer_are_added_up(source):
    src, stub, clock = source
    src.start()
    clock.now = T0 + 45
    begin, end = T0 + 40, T0 + 100
    first = answer({"c0_requests": [5.0], "c1_requests": [7.0]}, begin) | {"NextToken": "page2"}
    second = answer({"c0_p95": [0.002], "c1_errors": [1.0]}, begin)
    stub.add_response("get_metric_data", first, expected(TGS, begin, end))
    stub.add_response("get_metric_data", second, expected(TGS, begin, end) | {"NextToken": "page2"})
    stats = src.read()
    assert stats["blue"] == ColorStats(5, 0, pytest.approx(2.0))
    assert stats["green"] == ColorStats(7, 1, None)


def test_a_refused_call_is_unreachable_with_the_reason(source):
    src, stub, _ = source
    stub.add_client_error(
        "get_metric_data",
        service_error_code="AccessDenied",
        service_message="not authorized to perform: cloudwatch:GetMetricData",
        http_status_code=403,
    )
    with pytest.raises(Unreachable) as err:
        src.check()
    message = str(err.value)
    assert message.startswith(f"CloudWatch in eu-west-1 for the ALB {LB} did not answer")
    assert "AccessDenied" in message and "cloudwatch:GetMetricData" in message


def test_check_makes_a_real_call(source):
    src, stub, _ = source
    end = T0 - 20
    stub.add_response("get_metric_data", answer({}, end - 300), expected(TGS, end - 300, end))
    src.check()  # the Stubber's assert_no_pending_responses proves the call was made


def test_no_credentials_is_unreachable_before_anything_is_sent(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    src = factory.from_output(OUTPUT, {})
    assert isinstance(src, CloudWatchSource)
    with pytest.raises(Unreachable, match="no AWS credentials were found"):
        src.check()


def test_the_live_stacks_output_names_the_source():
    src = CloudWatchSource.from_output(OUTPUT)
    assert (src.region, src.load_balancer, src.target_groups) == ("eu-west-1", LB, TGS)
    assert src.describe == f"CloudWatch in eu-west-1 for the ALB {LB}"
    with pytest.raises(Unreachable, match="has no loadBalancer, targetGroups"):
        CloudWatchSource.from_output({"source": "cloudwatch", "region": "eu-west-1"})
