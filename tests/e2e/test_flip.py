"""The flip and the rollback through a real nginx under the real Pulumi engine."""

from __future__ import annotations

import re

from bluegreen import probe
from tests.support.docs import block_after, run_block
from tests.support.watcher import Watcher


def test_flip_moves_all_traffic_to_green_and_rollback_returns_it(project):
    project.up_all(active="blue")
    assert set(project.colors(20)) == {"blue"}

    project.ws.config_set("live", "bluegreen:activeColor", "green")
    assert "bluegreen:activeColor: green" in project.stack_file("live")
    with Watcher(project.edge_url) as during_flip:
        project.ws.up("live")
        returned_at = len(during_flip.seen)
        after = project.colors(50)
    assert after == ["green"] * 50, f"requests after the flip answered by {set(after)}"
    assert not during_flip.failures, f"requests failed during the flip: {during_flip.failures}"
    # No reload: every request reads the pointer, so once green answered, blue never did again,
    # and green answered before `pulumi up` returned.
    assert "green" in during_flip.seen[:returned_at], "pulumi up returned before green answered"
    switched = during_flip.seen.index("green")
    assert set(during_flip.seen[switched:]) == {"green"}, "blue answered after green did"

    outputs = project.ws.outputs("live")
    assert outputs["activeColor"] == "green"
    assert outputs["weights"] == {"blue": 0, "green": 100}

    project.ws.config_set("live", "bluegreen:activeColor", "blue")
    project.ws.up("live")
    assert project.colors(50) == ["blue"] * 50


def test_preview_of_a_flip_changes_the_edge_only(project):
    project.up_all(active="blue")
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    preview = project.ws.preview("live", diff=True).stdout
    changed = re.findall(
        r"^\s*[-+~]+\s+([\w:/.-]+): \((update|replace|create|delete)\)", preview, re.M
    )
    # The switch, and the record of the traffic change the update will keep (both the edge's).
    assert {t for t, _ in changed} == {
        "bluegreen:index:Edge",
        "pulumi-python:dynamic/local:NginxEdge",
        "pulumi-python:dynamic/bluegreen:FlipRecord",
    }, f"the flip must change the edge and nothing else: {changed}"
    assert '~ activeColor: "blue" => "green"' in preview
    # Arms are never changed by a flip: nothing they run would be touched by their next update
    # (their component records the live colour it was deployed under, which the gate reads).
    for arm in ("blue", "green"):
        preview = project.ws.preview(arm, diff=True).stdout
        assert "pulumi-python:dynamic/local:Process: (update)" not in preview
        assert "pulumi-python:dynamic/local:Process: (replace)" not in preview
    assert set(project.colors(10)) == {"blue"}, "a preview must not move traffic"


def test_arm_direct_endpoints_answer_alone(deployed):
    project = deployed
    for color, version in (("blue", "v1"), ("green", "v2")):
        answer = probe.readiness(project.arm_url(color), "/healthz/ready")
        assert answer.status == 200
        assert answer.json() == {"status": "ready", "color": color, "version": version}
    writes = probe.request(project.edge_url + "orders", method="POST", body=b"{}")
    assert writes.status == 200 and writes.color == "blue"


def test_the_readme_flip_block_runs_as_written(project):
    """`Flip and roll back` in the README, copied into a shell without a terminal: deploy the
    idle arm, change the pointer, preview, flip, and roll back."""
    project.ws.config_set("green", "bluegreen:version", "v1")
    project.up_all(active="blue")
    project.ws.config_set("green", "bluegreen:version", "v2")  # the new version, reviewed
    block = block_after("## Flip and roll back")
    assert "pulumi up -s live" in block
    result = run_block(block, project.dir, project.ws.env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    # The block ends with the rollback: blue serves again, and green was deployed on the way.
    assert project.colors(20) == ["blue"] * 20
    assert project.ws.outputs("green")["version"] == "v2"
    assert "bluegreen:activeColor: blue" in project.stack_file("live")
    assert "no changes" not in result.stdout  # the flip and the rollback did change the edge


def test_no_cookie_unless_the_sticky_canary_is_on(project):
    project.up_all(active="blue")
    assert "set-cookie" not in probe.request(project.edge_url).headers
    project.ws.config_set("live", "bluegreen:stickyCanary", "true")
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    project.ws.config_set("live", "bluegreen:canaryWeight", "50")
    project.ws.up("live")
    first = probe.request(project.edge_url)
    cookie = first.headers.get("set-cookie", "")
    assert cookie.startswith("bluegreen_client="), first.headers
    # With its cookie a client stays on one arm through the 50/50 step.
    jar = {"Cookie": cookie.split(";", 1)[0]}
    colors = {probe.request(project.edge_url, headers=jar).color for _ in range(30)}
    assert len(colors) == 1, colors


def test_destroy_stops_every_process_the_stacks_started_and_frees_every_port(dns_project):
    """`pulumi destroy` of each stack stops exactly what it started: the arms' services, nginx,
    Knot, Prometheus and the queue service. (Other tests end by stopping their processes without
    Pulumi, tests/support/sandbox.py `stop`; this one holds destroy to it.)"""
    project = dns_project
    project.ws.config_set("live", "bluegreen:metrics", "prometheus")
    project.ws.config_set("live", "bluegreen:maintenanceQueue", "/orders")
    project.up_all(active="blue")
    assert len(project.pids()) >= 6, project.pids()  # 2 arms, nginx, Knot, Prometheus, queue
    assert project.teardown() == [], "destroy left processes or ports behind"
    for stack in ("live", "green", "blue"):
        assert project.ws.outputs(stack) == {}, f"stack {stack} still has outputs"
