"""Bad input: a clear error before anything changes; what runs keeps running; state stays usable."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from bluegreen import probe
from cutover.workspace import PulumiError


def failed_up(project, stack: str) -> str:
    with pytest.raises(PulumiError) as err:
        project.ws.up(stack)
    return err.value.output


def assert_still_serving(project, color: str) -> None:
    assert project.colors(20) == [color] * 20, f"{color} must keep serving through the edge"


def test_unknown_colour_is_refused_and_blue_keeps_serving(project):
    project.up_all(active="blue")
    project.ws.config_set("live", "bluegreen:activeColor", "purple")
    out = failed_up(project, "live")
    assert 'bluegreen:activeColor must be "blue" or "green", got "purple"' in out
    assert_still_serving(project, "blue")
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    project.ws.up("live")
    assert_still_serving(project, "green")


def test_missing_arm_stack_is_named(project):
    project.up_all(active="blue")
    project.ws.config_set("live", "bluegreen:greenStack", "greeen")
    out = failed_up(project, "live")
    assert (
        'bluegreen:greenStack is "greeen", but stack "organization/bluegreen/greeen" does not'
        in out
    )
    assert_still_serving(project, "blue")
    project.ws.config_set("live", "bluegreen:greenStack", "green")
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    project.ws.up("live")
    assert_still_serving(project, "green")


def test_arm_stack_that_was_never_deployed_is_named(project):
    project.ws.up("blue")  # green exists as a stack but has never been deployed
    out = failed_up(project, "live")
    assert "The green arm (stack" in out and "pulumi up -s green" in out


def test_arm_port_already_taken_is_refused_before_anything_changes(project):
    project.up_all(active="blue")
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    try:
        project.ws.config_set("green", "bluegreen:port", str(taken))
        out = failed_up(project, "green")
        assert f"bluegreen:port {taken} is already in use on 127.0.0.1" in out
        # The running green was not stopped for a replacement that could not start.
        assert probe.readiness(project.arm_url("green"), "/healthz/ready").status == 200
    finally:
        squatter.close()
    project.ws.config_set("green", "bluegreen:port", str(project.ports["green"]))
    project.ws.up("green")
    assert_still_serving(project, "blue")


def test_edge_port_already_taken_is_refused(project):
    project.ws.up("blue")
    project.ws.up("green")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", project.ports["live"]))
        squatter.listen()
        out = failed_up(project, "live")
        assert f"bluegreen:edgePort {project.ports['live']} is already in use" in out
    project.ws.up("live")
    assert_still_serving(project, "blue")


def test_flip_to_an_arm_that_does_not_answer_is_refused(bare_project):
    project = bare_project
    project.up_all(active="blue")
    green_pid = int(
        open(os.path.join(project.dir, ".bluegreen", "green", "green.pid")).read().split()[0]
    )
    os.killpg(green_pid, signal.SIGKILL)  # green crashes after its deploy
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    out = failed_up(project, "live")
    assert "Switch to green refused: the green arm is not ready" in out
    assert f"http://127.0.0.1:{project.ports['green']}/healthz/ready did not answer" in out
    assert_still_serving(project, "blue")
    # `pulumi up` on the arm sees the dead process and starts it again; then the flip goes through.
    project.ws.up("green")
    project.ws.up("live")
    assert_still_serving(project, "green")


def test_flip_to_an_unready_arm_is_refused(bare_project):
    project = bare_project
    project.ws.config_set("green", "bluegreen:simulate", "ready-status=503")
    project.up_all(active="blue")
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    out = failed_up(project, "live")
    assert "answered HTTP 503" in out
    assert_still_serving(project, "blue")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("port", "http", "bluegreen:port"),
        (
            "port",
            "80",
            'bluegreen:port must be an integer port from 1024 to 65535, got "80"',
        ),
        ("version", "v2;}evil", "bluegreen:version must be 1-64 characters"),
        ("simulate", "delay=5", "bluegreen:simulate must be comma-separated"),
    ],
)
def test_malformed_arm_value_is_refused_and_the_arm_keeps_running(deployed, key, value, expected):
    project = deployed
    project.ws.config_set("green", f"bluegreen:{key}", value)
    out = failed_up(project, "green")
    assert expected in out
    assert probe.readiness(project.arm_url("green"), "/healthz/ready").json()["version"] == "v2"
    assert_still_serving(project, "blue")


def test_active_colour_on_an_arm_stack_is_refused(deployed):
    project = deployed
    project.ws.config_set("blue", "bluegreen:activeColor", "green")
    out = failed_up(project, "blue")
    assert "bluegreen:activeColor belongs only in the edge stack (Pulumi.live.yaml)" in out
    assert_still_serving(project, "blue")
