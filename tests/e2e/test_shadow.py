"""Shadow traffic through the real local edge: nginx mirrors live requests to the idle arm, and
`bluegreen shadow` (or the flip's first phase) judges the idle arm on them before anyone moves."""

from __future__ import annotations

import os
import signal

from cutover.flip import flip
from cutover.results import Outcome
from cutover.shadow import shadow
from tests.support.operating import flip_log, operator
from tests.support.watcher import Watcher


def _pid(project, color: str) -> int:
    with open(os.path.join(project.dir, ".bluegreen", color, f"{color}.pid")) as f:
        return int(f.read().split()[0])


def shadowing(project, percent: int = 100):
    project.ws.config_set("live", "bluegreen:shadow", str(percent))
    project.up_all(active="blue")
    assert project.ws.outputs("live")["shadow"] == percent
    return project


def test_a_healthy_idle_arm_holds_on_mirrored_traffic_and_users_stay_on_blue(project):
    shadowing(project)
    with Watcher(project.edge_url) as load, project.bluegreen("shadow", "--hold", "4s") as cmd:
        out, _ = cmd.communicate(timeout=120)
    assert cmd.returncode == 0, out
    assert "shadow: judging green on 100% of live requests" in out
    assert "green held on mirrored traffic" in out
    assert set(load.seen) == {"blue"}, "users were moved"
    record = [e for e in flip_log(project) if e["event"] == "shadow"][-1]
    assert record["phase"] == "held" and record["seen"]["green"]["requests"] >= 20, record


def test_a_failing_idle_arm_is_caught_on_shadow_traffic_and_the_flip_is_refused(project):
    shadowing(project)
    os.kill(_pid(project, "green"), signal.SIGUSR1)  # green answers 500 to all but its health
    op, said = operator(project)
    with Watcher(project.edge_url) as load:
        ended = flip(op, "green", hold_s=4, interval=0.5)
    assert ended.outcome is Outcome.REFUSED, said
    assert any("green is not ready for users: errors: green " in line for line in said), said
    assert any("flip to green refused, the pointer stays at blue" in line for line in said), said
    assert not load.failures and set(load.seen) == {"blue"}, "a user saw green or an error"
    assert "bluegreen:activeColor: blue" in project.stack_file("live")
    assert project.ws.outputs("live")["activeColor"] == "blue"


def test_no_shadow_traffic_is_not_a_pass(project):
    shadowing(project)
    op, said = operator(project)
    # nobody sent a request: nothing was mirrored
    assert shadow(op, 2, 0.5).outcome is Outcome.NOT_HELD
    assert any("fewer than the 20 needed to judge it" in line for line in said), said


def test_shadow_without_a_mirror_says_how_to_turn_it_on(project):
    project.up_all(active="blue")
    op, said = operator(project)
    assert shadow(op, 2, 0.5).outcome is Outcome.NOT_READY
    assert "set bluegreen:shadow" in said[-1] and "pulumi up -s live" in said[-1], said
