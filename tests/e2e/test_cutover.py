"""Operating the cutover on the local platform: the flip command with canary steps and hold and
watch, automatic rollback, maintenance mode, evidence, and the faults a 3 a.m. operator meets."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from bluegreen import probe
from cutover.flip import flip
from cutover.results import Outcome
from cutover.workspace import PulumiError
from tests.support import leaks
from tests.support.docs import block_after, run_block
from tests.support.operating import flip_log, operator
from tests.support.watcher import Watcher


def test_flip_in_canary_steps_moves_traffic_and_records_evidence(project):
    project.up_all(active="blue")
    op, said = operator(project)
    with Watcher(project.edge_url) as load:
        ended = flip(op, "green", canary=[25, 100], hold_s=2, interval=0.5)
    assert ended.outcome is Outcome.DONE, said
    assert not load.failures, load.failures
    assert project.colors(20) == ["green"] * 20
    assert {"blue", "green"} <= set(load.seen), "the 25% step must have sent traffic to both"
    assert "bluegreen:canaryWeight" not in project.stack_file("live")
    started, done = flip_log(project)[-2:]
    assert (started["phase"], done["phase"], done["outcome"]) == ("started", "done", "ok")
    assert done["from"] == "blue" and done["to"] == "green"
    assert done["versions"] == {"blue": "v1", "green": "v2"}
    assert done["steps"] == [25, 100]
    # The smoke figures are the gate's own sample (policy/config.json: from 800 requests each,
    # doubled while the judge is undecided), not a second one the command took.
    assert done["smoke"]["samples"] in (800, 1600, 3200, 6400)
    assert done["smoke"]["judge"]["outcome"] == "pass" and done["smoke"]["green"]["p95Ms"] > 0
    assert "flipLog" not in project.ws.outputs("live"), "evidence is not a local file's output"


def test_new_colour_crashing_during_a_canary_step_is_rolled_back(project):
    project.up_all(active="blue")
    op, said = operator(project)
    green_pid = int(
        open(os.path.join(project.dir, ".bluegreen", "green", "green.pid")).read().split()[0]
    )

    def crash_green_once_it_takes_traffic() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (project.ws.outputs("live").get("weights") or {}).get("green") == 25:
                os.killpg(green_pid, signal.SIGKILL)
                return
            time.sleep(0.2)

    crasher = threading.Thread(target=crash_green_once_it_takes_traffic, daemon=True)
    with Watcher(project.edge_url):
        crasher.start()
        ended = flip(op, "green", canary=[25, 100], hold_s=20, interval=0.5)
    assert ended.outcome is Outcome.ROLLED_BACK
    last = flip_log(project)[-1]
    assert last["phase"] == "rolled-back" and last["step"] == 25, last
    assert "green" in last["breach"]
    assert project.colors(20) == ["blue"] * 20
    assert "bluegreen:activeColor: blue" in project.stack_file("live")
    rollback = [e for e in flip_log(project) if e["event"] == "rollback" and e["phase"] == "done"][
        -1
    ]
    assert rollback["timeToRecover"] < 120  # the reference's bound; bench/rollback.py has figures


def test_a_refused_step_leaves_the_pointer_where_it_was(project):
    project.ws.config_set("green", "bluegreen:simulate", "ready-status=503")
    project.up_all(active="blue")
    op, said = operator(project)
    assert flip(op, "green", hold_s=1).outcome is Outcome.FAILED
    assert any("the pointer stays at blue" in line for line in said), said
    # The log keeps why, as the policy said it, however long the command's output was.
    [violation] = flip_log(project)[-1]["violations"]
    assert violation["policy"] == "bluegreen-smoke-test" and violation["level"] == "mandatory"
    assert violation["message"].startswith("Flip to green denied: green is not ready")
    assert "bluegreen:activeColor: blue" in project.stack_file("live")
    assert project.colors(10) == ["blue"] * 10


@pytest.mark.parametrize("status", [503, 423])
def test_maintenance_refuses_writes_and_serves_reads(project, status):
    project.up_all(active="blue")
    project.ws.config_set("live", "bluegreen:maintenance", "true")
    project.ws.config_set("live", "bluegreen:maintenanceStatus", str(status))
    project.ws.config_set("live", "bluegreen:maintenanceBanner", "Read-only until 10:00 UTC")
    project.ws.up("live")
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        answer = probe.request(project.edge_url + "orders", method=method, body=b"{}")
        assert answer.status == status, (method, answer.describe())
        assert answer.headers.get("retry-after") == "30"
        assert answer.json() == {
            "error": "maintenance",
            "status": status,
            "retryAfter": 30,
            "message": "The service is read-only for maintenance; retry later.",
        }
    read = probe.request(project.edge_url)
    assert read.status == 200 and read.color == "blue"
    assert read.headers.get("x-bluegreen-banner") == "Read-only until 10:00 UTC"
    project.ws.config_set("live", "bluegreen:maintenance", "false")
    project.ws.up("live")
    assert probe.request(project.edge_url + "orders", method="POST", body=b"{}").status == 200


def test_a_reload_nginx_does_not_apply_fails_and_the_old_config_keeps_serving(bare_project):
    """A structural change (shadow traffic turned on) with the flip needs a reload; an nginx that
    takes the signal and never acts on it must not pass for a flipped edge."""
    project = bare_project
    project.up_all(active="blue")
    master = int(open(os.path.join(project.dir, ".bluegreen", "live", "nginx.pid")).read())
    os.kill(master, signal.SIGSTOP)  # the reload signal is delivered but never acted on
    try:
        project.ws.config_set("live", "bluegreen:flipTimeoutSeconds", "2")
        project.ws.config_set("live", "bluegreen:shadow", "50")
        project.ws.config_set("live", "bluegreen:activeColor", "green")
        with pytest.raises(PulumiError) as err:
            project.ws.up("live")
        assert "Switch to green not confirmed" in err.value.output
        assert "The previous state and config were restored" in err.value.output
        assert project.colors(10) == ["blue"] * 10  # the old workers keep serving
    finally:
        os.kill(master, signal.SIGCONT)
    time.sleep(0.5)
    assert project.colors(10) == ["blue"] * 10, "the restored config must be what nginx applies"
    project.ws.up("live")  # with nginx healthy again, the same change goes through
    assert project.colors(10) == ["green"] * 10


def test_a_flip_and_maintenance_never_reload_nginx(bare_project):
    project = bare_project
    project.up_all(active="blue")
    run = os.path.join(project.dir, ".bluegreen", "live")
    master = int(open(os.path.join(run, "nginx.pid")).read())

    def workers() -> set[int]:
        out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
        return set(out.stdout.split())

    before = workers()
    for key, value in (
        ("activeColor", "green"),
        ("canaryWeight", "25"),
        ("maintenance", "true"),
        ("maintenance", "false"),
        ("canaryWeight", "0"),
    ):
        project.ws.config_set("live", f"bluegreen:{key}", value)
        project.ws.up("live")
        assert workers() == before, f"nginx reloaded for bluegreen:{key} {value}"
    assert project.colors(10) == ["green"] * 10


def test_two_updates_at_once_the_second_is_refused_by_the_stack_lock(project):
    project.up_all(active="blue")
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    results = {}
    threads = [
        threading.Thread(
            target=lambda k=k: results.setdefault(k, project.ws.up("live", check=False))
        )
        for k in (1, 2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.returncode for r in results.values())
    assert codes[0] == 0 and codes[1] != 0, {k: r.returncode for k, r in results.items()}
    refused = next(r for r in results.values() if r.returncode != 0)
    assert "the stack is currently locked" in refused.stdout + refused.stderr
    assert project.ws.outputs("live")["activeColor"] == "green"
    assert project.colors(20) == ["green"] * 20


def test_the_cli_killed_mid_update_recovers_with_the_readme_block(project):
    project.up_all(active="blue")
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    run = uuid.uuid4().hex  # every process this `pulumi up` starts inherits it
    cmd = ["pulumi", "up", "-s", "live", "--yes", "--skip-preview", "--non-interactive"]
    killed = subprocess.Popen(
        cmd,
        cwd=project.dir,
        env={**project.ws.env, leaks.MARKER: run},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill it once it holds the stack's lock and runs a plugin; a fixed wait was too short on a
    # loaded machine (the CLI itself carries the marker, so it must be left out).
    locks = Path(project.ws.env["PULUMI_BACKEND_URL"].removeprefix("file://"), ".pulumi", "locks")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        list(locks.rglob("*.json")) and set(leaks.started_by(run)) - {killed.pid}
    ):
        time.sleep(0.05)
    assert list(locks.rglob("*.json")), "the update took no lock within 60 s"
    assert set(leaks.started_by(run)) - {killed.pid}, "the update started no plugin within 60 s"
    killed.kill()
    killed.wait()
    # Its language host, policy pack and dynamic providers go with it, as Pulumi's own do.
    left = leaks.wait_gone(run, timeout=10)
    assert not left, f"plugins outlived the killed CLI: {left}"
    locked = project.ws.up("live", check=False)
    assert locked.returncode != 0 and "currently locked" in locked.stdout + locked.stderr
    # The README's recovery, exactly as written there, in a shell without a terminal.
    block = block_after("## Recovering an interrupted update", doc="docs/operating.md")
    recovery = run_block(block, project.dir, project.ws.env)
    assert recovery.returncode == 0, recovery.stdout[-2000:] + recovery.stderr[-2000:]
    assert project.ws.outputs("live")["activeColor"] == "green"
    assert project.colors(20) == ["green"] * 20


def test_freeze_writes_holds_writes_for_the_flip_and_lifts_them_after(project):
    project.up_all(active="blue")
    op, said = operator(project)
    during: list[int | None] = []

    def write_while_holding() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not during:
            if project.ws.outputs("live").get("activeColor") == "green":
                during.append(probe.request(project.edge_url + "orders", "POST", body=b"{}").status)
            time.sleep(0.2)

    writer = threading.Thread(target=write_while_holding, daemon=True)
    writer.start()
    with Watcher(project.edge_url):  # reads keep flowing, so the hold has traffic to judge
        ended = flip(op, "green", hold_s=4, interval=0.5, freeze_writes=True)
        assert ended.outcome is Outcome.DONE, said
    writer.join(timeout=10)
    assert during == [503], "writes during the flip's hold must be refused"
    after = probe.request(project.edge_url + "orders", "POST", body=b"{}")
    assert after.status == 200 and after.color == "green"
    assert project.ws.outputs("live")["maintenance"] is False


def test_ctrl_c_during_a_hold_puts_everything_back_and_leaves_nothing_behind(project, tmp_path):
    project.up_all(active="blue")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    said: list[str] = []
    with project.bluegreen(
        "flip", "green", "--hold", "5m", "--freeze-writes", env={"TMPDIR": str(tmp)}
    ) as flip:
        for line in flip.stdout:
            said.append(line)
            if "holding" in line:
                break
        assert flip.poll() is None, "".join(said)
        assert project.colors(10) == ["green"] * 10
        assert probe.request(project.edge_url + "orders", "POST", body=b"{}").status == 503
        assert [p.name for p in tmp.iterdir()], "the gate's report file exists during the hold"
        os.killpg(flip.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
        rest, _ = flip.communicate(timeout=180)
    said.append(rest)
    assert flip.returncode == 130, "".join(said)
    assert "interrupted during the 100% step" in rest
    assert project.colors(20) == ["blue"] * 20
    after = probe.request(project.edge_url + "orders", "POST", body=b"{}")
    assert after.status == 200 and after.color == "blue", "writes are let through again"
    assert "bluegreen:activeColor: blue" in project.stack_file("live")
    assert "bluegreen:maintenance:" not in project.stack_file("live"), "as it was before"
    flip_record = [e for e in flip_log(project) if e["event"] == "flip"][-1]
    assert (flip_record["phase"], flip_record["step"]) == ("interrupted", 100)
    assert flip_log(project)[-2]["event"] == "rollback" and flip_log(project)[-2]["phase"] == "done"
    assert list(tmp.iterdir()) == [], "temporary files left behind"


def test_watch_rolls_back_a_crashed_arm_and_status_shows_what_happened(project):
    project.up_all(active="blue")
    project.ws.config_set("live", "bluegreen:activeColor", "green")  # a flip by hand
    project.ws.up("live")
    green_pid = int(
        open(os.path.join(project.dir, ".bluegreen", "green", "green.pid")).read().split()[0]
    )
    os.killpg(green_pid, signal.SIGKILL)
    with (
        Watcher(project.edge_url),
        project.bluegreen("watch", "--hold", "20s", "--interval", "0.5s") as watch,
    ):
        said, _ = watch.communicate(timeout=180)
    assert watch.returncode == 1, said
    assert "watching green at 100% for 20 s" in said
    assert "stop rule broken: green" in said
    assert project.colors(20) == ["blue"] * 20
    assert "bluegreen:activeColor: blue" in project.stack_file("live")
    with project.bluegreen("status") as status:
        shown, _ = status.communicate(timeout=120)
    assert status.returncode == 0, shown
    lines = [line for line in shown.splitlines() if not line.startswith("$ ")]
    assert lines[0].startswith("live: blue  weights blue 100 / green 0  maintenance off"), shown
    assert lines[1].split()[:3] == ["blue", "v1", "ready"], shown
    green = lines[2].split()
    assert green[:2] == ["green", "v2"] and green[2] != "ready", shown
    assert re.search(r"rollback +green -> blue  done", shown), shown
