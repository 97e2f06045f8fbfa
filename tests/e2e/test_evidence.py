"""Evidence of every traffic change in the live stack's own state, whatever made the change: a
bare `pulumi up -s live` (as CI runs it), the `bluegreen` command with its hold's verdict, and
the optional JSON-lines file; `bluegreen status` shows them."""

from __future__ import annotations

import json
import os
import subprocess

from cutover.flip import flip
from cutover.operator import Operator
from cutover.results import Outcome
from cutover.status import status
from tests.support.watcher import Watcher


def _init_git(path: str) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", path, *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "start")
    return git("rev-parse", "--short", "HEAD")


def test_a_bare_pulumi_up_that_moves_traffic_leaves_a_record_status_shows(project):
    project.up_all(active="blue")
    [first] = project.ws.outputs("live")["evidence"]
    assert first.get("from") is None and first["to"]["activeColor"] == "blue"
    commit = _init_git(project.dir)
    project.ws.config_set("live", "bluegreen:evidenceFile", "audit/flips.jsonl")
    # As the deploy workflow runs it: GitHub Actions' environment, nothing from bluegreen.
    ci = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTOR": "merge-bot",
        "GITHUB_SERVER_URL": "https://github.example.com",
        "GITHUB_REPOSITORY": "shop/bluegreen",
        "GITHUB_RUN_ID": "4242",
    }
    project.ws.config_set("live", "bluegreen:activeColor", "green")
    project.ws.with_env(ci).up("live")
    records = project.ws.outputs("live")["evidence"]
    assert len(records) == 2
    last = records[-1]
    assert last["from"] == {"activeColor": "blue", "weights": {"blue": 100, "green": 0}}
    assert last["to"] == {"activeColor": "green", "weights": {"blue": 0, "green": 100}}
    assert last["versions"] == {"blue": "v1", "green": "v2"}
    assert last["who"] == "merge-bot (GitHub Actions)"
    assert last["where"] == "https://github.example.com/shop/bluegreen/actions/runs/4242"
    assert last["commit"] == commit
    assert (last["outcome"], last.get("hold")) == ("applied", None)  # nobody held and watched it
    with open(os.path.join(project.dir, "audit", "flips.jsonl")) as f:
        assert json.loads(f.readlines()[-1]) == last

    # An update that moves no traffic records nothing.
    project.ws.up("live")
    assert len(project.ws.outputs("live")["evidence"]) == 2

    with project.bluegreen("status") as status:
        shown, _ = status.communicate(timeout=120)
    assert status.returncode == 0, shown
    assert "traffic changes (live stack's evidence):" in shown
    assert (
        f"blue -> green  applied  [blue v1 / green v2]  by merge-bot (GitHub Actions) at "
        f"https://github.example.com/shop/bluegreen/actions/runs/4242  commit {commit}"
    ) in shown


def test_the_commands_flip_records_the_gates_figures_and_the_holds_verdict(project):
    project.up_all(active="blue")
    said: list[str] = []
    with Watcher(project.edge_url):
        ended = flip(Operator(project.ws, out=said.append), "green", hold_s=2, interval=0.5)
        assert ended.outcome is Outcome.DONE
    last = project.ws.outputs("live")["evidence"][-1]
    assert last["to"]["activeColor"] == "green"
    assert last["command"] == "bluegreen flip" and last["step"] == 100
    assert last["smoke"]["samples"] >= 800 and last["smoke"]["green"]["p95Ms"] > 0
    latency, errors = last["smoke"]["judge"]["findings"]
    assert (latency["metric"], latency["verdict"], errors["verdict"]) == ("latency", "pass", "pass")
    assert latency["low"] <= latency["estimate"] <= latency["high"] <= latency["tolerance"]
    assert last["outcome"] == "held"
    assert last["hold"]["verdict"] == "held" and last["hold"]["seen"]["green"]["requests"] >= 20
    assert last["hold"]["judge"]["outcome"] == "pass"
    # The operator saw the same findings as they came, and `status` shows them again.
    assert any(line.startswith("gate latency: green is ") for line in said), said
    assert any(line.startswith("hold errors: green ") for line in said), said
    shown: list[str] = []
    status(Operator(project.ws, out=shown.append))
    assert any(line.startswith("    gate latency: green is ") for line in shown), shown
    assert any(line.startswith("    hold errors: green ") for line in shown), shown
