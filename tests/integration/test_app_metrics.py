"""The reference service's Prometheus metrics: what the hold after a flip reads from each arm."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from bluegreen import arm_metrics, probe
from tests.support.sandbox import ROOT, free_ports


@pytest.fixture
def arm():
    [port] = free_ports(1)
    proc = subprocess.Popen(
        [
            sys.executable,
            f"{ROOT}/app/server.py",
            "--color=green",
            "--version=v2",
            f"--port={port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        probe.wait_until(url + "/healthz/ready", lambda a: a.status == 200, timeout=10)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def series(url: str, name: str) -> dict[str, float]:
    text = probe.request(url + arm_metrics.PATH).body.decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name)
    }


def test_users_requests_are_counted_by_code_with_colour_and_version_and_probes_are_not(arm):
    url, proc = arm
    for _ in range(3):
        assert probe.request(url + "/orders").status == 200
    probe.request(url + "/", headers={probe.PROBE_HEADER: "smoke"})  # the gate's sample
    probe.request(url + "/healthz/ready")  # readiness checks
    counted = series(url, arm_metrics.REQUESTS)
    assert counted == {
        f'{arm_metrics.REQUESTS}{{code="200",color="green",method="GET",version="v2"}}': 3.0
    }
    buckets = series(url, arm_metrics.DURATION + "_count")
    assert buckets == {f'{arm_metrics.DURATION}_count{{color="green",version="v2"}}': 3.0}


def test_a_failing_release_counts_its_5xx(arm):
    url, proc = arm
    proc.send_signal(10)  # SIGUSR1: every request but the health check answers 500
    time.sleep(0.2)
    assert probe.request(url + "/").status == 500
    assert probe.request(url + "/healthz/ready").status == 200
    counted = series(url, arm_metrics.REQUESTS)
    assert (
        counted[f'{arm_metrics.REQUESTS}{{code="500",color="green",method="GET",version="v2"}}']
        == 1
    )


def test_an_idempotency_key_is_deduped_per_client_as_the_queue_scopes_it(arm):
    url, _ = arm

    def write(key: str, **headers: str) -> None:
        sent = {"Idempotency-Key": key, **headers}
        assert probe.request(url + "/orders", method="POST", headers=sent).status == 200

    write("k", Authorization="Bearer alice")
    write("k", Authorization="Bearer bob")  # another client's same key: another write
    write("k", Cookie="sid=carol")
    write("k")  # by address
    write("k", Authorization="Bearer alice")  # alice again: her retry
    journal = json.loads(probe.request(url + "/_arm/writes").body)
    assert [w["duplicate"] for w in journal] == [False, False, False, False, True]
