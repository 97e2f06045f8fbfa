"""Webhook notices (cutover/notify.py) against a real HTTP receiver on loopback: what a channel
reads for each event, and that a webhook that fails or hangs never holds up the cutover."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from bluegreen.config import SECRET as SECRET_SHOWN
from bluegreen.live_stack import ArmOutputs
from cutover import display, notify, status
from cutover.engine_events import EngineEvents, PulumiError, Result
from cutover.flip import flip
from cutover.operator import Operator
from cutover.results import Outcome
from cutover.rolling_back import rollback
from cutover.sources.interface import ColorStats
from cutover.watching import watch
from cutover.workspace import ROOT
from tests.support.receiver import SECRET, Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def hanging():
    r = Receiver(hang=True)
    yield r
    r.stop()


@pytest.fixture
def hooks():
    """Webhooks a test makes, their threads stopped (joined) at its end."""
    made: list[notify.Webhook] = []

    def make(url: str, **kwargs) -> notify.Webhook:
        hook = notify.Webhook(url, "live", **kwargs)
        made.append(hook)
        return hook

    yield make
    for hook in made:
        thread = hook._thread
        hook.close(10)
        if thread is not None:
            thread.join(10)
            assert not thread.is_alive(), "a webhook thread was left running"


FIGURES = {
    "blue": {"requests": 240, "errors": 0, "p95Ms": 3.14},
    "green": {"requests": 80, "errors": 9, "p95Ms": None},
}


FLIP = {
    "id": "abc123",
    "from": "blue",
    "to": "green",
    "versions": {"blue": "v1", "green": "v2"},
    "steps": [25, 100],
}


BREACH = "green answered 9 of 80 requests with 5xx or not at all (11.2% > 1.0%)"


def test_each_event_reads_in_a_channel_and_carries_its_facts(receiver, hooks):
    warned: list[str] = []
    hook = hooks(receiver.url, warn=warned.append)
    # The calls the procedure makes, in a flip's order.
    hook("flip", "started", {**FLIP, "weights": {"blue": 100, "green": 0}})
    hook("flip", "held", {**FLIP, "step": 25, "seen": FIGURES})
    hook("flip", "done", {**FLIP, "phase": "done", "seconds": 42.04, "seen": FIGURES})
    hook("flip", "rolled-back", {**FLIP, "step": 25, "breach": BREACH, "seen": FIGURES})
    violation = {"policy": "bluegreen-smoke-test", "level": "mandatory", "message": "green is 500"}
    hook("flip", "failed", {**FLIP, "failedStep": 25, "violations": [violation]})
    hook("rollback", "rolled-back", {"from": "green", "to": "blue", "reason": "operator request"})
    assert hook.close(5) is True
    assert warned == []

    texts = [b["text"] for b in receiver.bodies]
    facts = [b["bluegreen"] for b in receiver.bodies]
    assert [f["event"] for f in facts] == [
        "started",
        "held",
        "held",
        "rolled-back",
        "failed",
        "rolled-back",
    ]
    assert texts[0] == "bluegreen live: flip blue → green started (steps 25%, 100%)"
    assert texts[1] == (
        "bluegreen live: green held at 25% [blue 240 requests, 0.00% 5xx, p95 3.1 ms; "
        "green 80 requests, 11.25% 5xx, p95 -]"
    )
    assert texts[2].startswith("bluegreen live: flip blue → green done after 42.0 s [")
    # Slack reads &gt; as ">": its control characters are escaped, nothing else.
    assert texts[3].startswith(
        "bluegreen live: flip blue → green rolled back during the 25% step; blue serves again "
        "— green answered 9 of 80 requests with 5xx or not at all (11.2% &gt; 1.0%) ["
    )
    assert texts[4] == (
        "bluegreen live: flip blue → green failed during the 25% step "
        "— bluegreen-smoke-test: green is 500"
    )
    assert texts[5] == "bluegreen live: rolled back green → blue — operator request"

    for f in facts:
        assert f["stack"] == "live"
        assert set(f) >= {"event", "from", "to", "weights", "versions", "reason", "figures"}
    assert facts[0]["weights"] == {"blue": 100, "green": 0}
    assert facts[0]["versions"] == {"blue": "v1", "green": "v2"}
    assert facts[1]["weights"] == {"green": 25, "blue": 75}
    assert facts[1]["figures"] == FIGURES
    assert facts[2]["weights"] == {"green": 100, "blue": 0}
    assert facts[3] | {"figures": None} == {
        "event": "rolled-back",
        "command": "flip",
        "stack": "live",
        "from": "blue",
        "to": "green",
        "step": 25,
        "weights": {"blue": 100, "green": 0},
        "versions": {"blue": "v1", "green": "v2"},
        "reason": BREACH,
        "figures": None,
    }
    assert facts[3]["figures"]["green"] == {"requests": 80, "errors": 9, "p95Ms": None}
    assert facts[4]["reason"] == "bluegreen-smoke-test: green is 500"
    assert facts[5]["weights"] == {"blue": 100, "green": 0}
    assert all(h["Content-Type"] == "application/json" for h in receiver.headers)


def test_a_hanging_webhook_does_not_hold_up_the_caller(hanging, hooks):
    warned: list[str] = []
    hook = hooks(hanging.url, warn=warned.append, timeout=1.0)
    start = time.monotonic()
    hook("flip", "started", FLIP)
    hook("flip", "rolled-back", {**FLIP, "step": 25, "breach": BREACH})
    assert hook.close(0.5) is False  # the receiver holds the first post for 30 s
    assert time.monotonic() - start < 2
    assert len(warned) == 1 and "still busy after 0.5 s; not waiting for it" in warned[0]
    assert SECRET not in warned[0]


def test_an_unreachable_webhook_warns_in_one_line_and_never_raises(hooks):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    warned: list[str] = []
    hook = hooks(f"http://127.0.0.1:{port}/services/{SECRET}", warn=warned.append)
    hook("rollback", "rolled-back", {"from": "green", "to": "blue", "reason": "operator request"})
    assert hook.close(5) is True
    assert len(warned) == 1 and "\n" not in warned[0]
    assert warned[0].startswith(
        'bluegreen: warning: the webhook (http://127.0.0.1/…) did not take the "rolled-back" '
        "notice: connection refused"
    )
    assert SECRET not in warned[0]


def test_a_webhook_that_answers_an_error_is_named_with_its_status(hooks):
    broken = Receiver(status=500)
    try:
        warned: list[str] = []
        hook = hooks(broken.url, warn=warned.append)
        hook("flip", "started", FLIP)
        assert hook.close(5) is True
        assert len(broken.bodies) == 1
        assert warned == [
            'bluegreen: warning: the webhook (http://127.0.0.1/…) did not take the "started" '
            "notice: it answered 500 Internal Server Error; carrying on without it"
        ]
    finally:
        broken.stop()


class Edge:
    """Stands in for the Workspace of an edge stack `live` whose update may fail; records what the
    procedure writes."""

    def __init__(self, project_dir: Path, fail: bool = False) -> None:
        shutil.copy(os.path.join(ROOT, "Pulumi.yaml"), project_dir)
        self.project_dir, self.fail, self.policy_pack = str(project_dir), fail, None
        self.served = {"activeColor": "green", "weights": {"green": 100, "blue": 0}}
        self.set: dict[str, str | None] = {}

    def config(self, stack: str) -> dict[str, str]:
        return {"bluegreen:role": "edge", **self.file_config(stack)}

    def file_config(self, stack: str) -> dict[str, str]:
        return {"bluegreen:activeColor": self.served["activeColor"]}

    def outputs(self, stack: str) -> dict:
        return dict(self.served) if stack == "live" else {}

    def outputs_of(self, stacks) -> dict[str, dict]:
        return {stack: self.outputs(stack) for stack in stacks}

    def set_config(self, stack: str, changes: dict[str, str | None]) -> None:
        self.set.update(changes)

    def with_env(self, extra: dict[str, str]) -> Edge:
        self.env = extra  # the evidence note of the next update
        return self

    def up(self, stack: str, **kwargs) -> Result:
        if self.fail:
            raise PulumiError(Result("pulumi up --stack live", "", "error: boom", 1))
        before = self.served
        self.served = {"activeColor": "blue", "weights": {"blue": 100, "green": 0}}
        moved = {"metadata": {"type": "pulumi:pulumi:Stack", "old": {"outputs": before}}}
        moved["metadata"]["new"] = {"outputs": self.served}
        events = EngineEvents([{"resOutputsEvent": moved}])
        return Result("pulumi up --stack live", "", "", 0, events)


def test_a_rollback_is_told_and_a_hanging_webhook_does_not_delay_it(tmp_path, hanging, hooks):
    said: list[str] = []
    hook = hooks(hanging.url, warn=said.append, timeout=1.0)
    op = Operator(Edge(tmp_path), out=said.append, notify=hook)
    start = time.monotonic()
    assert rollback(op).outcome is Outcome.DONE
    assert time.monotonic() - start < 2
    assert op.ws.set["bluegreen:activeColor"] == "blue"
    deadline = time.monotonic() + 5
    while not hanging.bodies and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hanging.bodies[0]["text"] == (
        "bluegreen live: rolled back green → blue — operator request"
    )


def test_a_failed_rollback_is_told_as_failed(tmp_path, receiver, hooks):
    hook = hooks(receiver.url, warn=print)
    op = Operator(Edge(tmp_path, fail=True), out=lambda line: None, notify=hook)
    assert rollback(op).outcome is Outcome.FAILED
    hook.close(5)
    assert [b["bluegreen"]["event"] for b in receiver.bodies] == ["failed"]
    assert receiver.bodies[0]["text"] == (
        "bluegreen live: rollback green → blue failed — operator request"
    )


def test_a_flip_refused_before_the_pointer_moves_is_told(tmp_path, receiver, hooks):
    hook = hooks(receiver.url, warn=print)
    edge = Edge(tmp_path)
    op = Operator(edge, out=lambda line: None, notify=hook)
    assert flip(op, "blue").outcome is Outcome.REFUSED
    hook.close(5)
    assert edge.set == {}, "nothing was written"
    (body,) = receiver.bodies
    assert body["bluegreen"]["event"] == "failed"
    assert body["text"].startswith(
        "bluegreen live: flip green → blue refused — the live stack exports no `metrics` output"
    )


class Failing:
    """A metrics source where green answers half its requests with 5xx."""

    describe = "a test source"

    def check(self) -> None: ...

    def start(self) -> None: ...

    def read(self):
        return {"green": ColorStats(100, 50, 12.0), "blue": ColorStats(0, 0, None)}

    def recent(self, color: str) -> ColorStats:
        return ColorStats()


def test_watch_shows_the_hold_and_tells_the_rollback_with_its_figures(
    tmp_path, receiver, hooks, monkeypatch
):
    said: list[str] = []
    hook = hooks(receiver.url, warn=said.append)
    show = display.for_hold(said.append, console=Console(file=io.StringIO()))
    op = Operator(Edge(tmp_path), out=said.append, notify=hook, display=show)
    monkeypatch.setattr(Operator, "source", lambda self, live, arms: Failing())
    assert watch(op, hold_s=0.2, interval=0.1).outcome is Outcome.ROLLED_BACK
    hook.close(5)
    # Not a terminal: the hold's last figures as a plain line, before the rollback.
    shown = [line for line in said if line.startswith("hold green 100%:")]
    assert len(shown) == 1
    assert "green requests=100 5xx=50.00% p95=12.0ms" in shown[0]
    assert "blue requests=0 5xx=0.00% p95=-" in shown[0]
    (body,) = receiver.bodies
    facts = body["bluegreen"]
    assert (facts["event"], facts["command"], facts["from"], facts["to"]) == (
        "rolled-back",
        "watch",
        "green",
        "blue",
    )
    assert facts["figures"]["green"] == {"requests": 100, "errors": 50, "p95Ms": 12.0}
    assert body["text"].startswith(
        "bluegreen live: watch: rolled green back to blue — errors: green 50.00% (95% CI "
    )


@pytest.mark.parametrize("argv", [["flip", "green"], ["watch"]])
def test_the_command_refuses_a_bad_webhook_url_before_anything_changes(
    argv, tmp_path, monkeypatch, capsys
):
    from cutover.cli import main
    from cutover.workspace import Workspace, toolchain_env

    project, state = tmp_path / "project", tmp_path / "state"
    project.mkdir()
    state.mkdir()
    shutil.copy(os.path.join(ROOT, "Pulumi.yaml"), project)
    (project / "Pulumi.live.yaml").write_text(
        "config:\n  bluegreen:role: edge\n  bluegreen:activeColor: blue\n"
    )
    env = toolchain_env()
    env.update(PULUMI_BACKEND_URL=f"file://{state}", PULUMI_CONFIG_PASSPHRASE="unit")
    ws = Workspace(project_dir=str(project), env=env)
    ws.ensure_stack("live")
    ws.config_set_secret("live", notify.KEY, f"ftp://hooks.example.com/{SECRET}")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(project)
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert (
        'bluegreen: error: bluegreen:webhookUrl of stack "live" must be an http:// or '
        "https:// URL with a host, such as https://hooks.slack.com/services/...; got "
        '"ftp://hooks.example.com/…"'
    ) in err
    assert SECRET not in err
    after = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    assert after == before, "nothing was written"


def test_a_rollback_is_not_held_back_by_a_bad_webhook_url_and_says_nobody_was_told(
    tmp_path, capsys
):
    """A rollback moves the traffic first: the webhook is read when there is news, and a bad URL
    then costs the message, not the rollback."""

    class Secret(Edge):
        def file_config(self, stack: str) -> dict[str, str]:
            return {**super().file_config(stack), notify.KEY: SECRET_SHOWN}

        def config_get(self, stack: str, key: str) -> str | None:
            return f"ftp://hooks.example.com/{SECRET}" if key == notify.KEY else None

    edge = Secret(tmp_path)
    said: list[str] = []
    op = Operator(edge, out=said.append, notify=notify.Told(edge, "live"))
    assert rollback(op).outcome is Outcome.DONE
    assert edge.served["activeColor"] == "blue"
    err = capsys.readouterr().err
    assert "bluegreen: warning: nobody was told: bluegreen:webhookUrl" in err
    assert SECRET not in err


@pytest.mark.parametrize(
    ("version", "shown", "note"),
    [
        ("v3", "v3", "(the edge last read v2)"),
        ("\x1b]0;owned\x07v3", "v2", "(answers a version that is not one: not shown)"),
    ],
)
def test_status_shows_the_version_an_arm_serves_only_when_it_is_one(tmp_path, version, shown, note):
    """`status` asks each arm how it is: what it answers reaches a terminal, so a version that
    does not fit the config's alphabet (escape sequences, say) is not printed."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = json.dumps({"status": "ready", "color": "green", "version": version}).encode()

    class Arm(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Arm)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        op = Operator(Edge(tmp_path), out=lambda line: None)
        endpoint = f"http://127.0.0.1:{server.server_port}"
        line = status.arm_line(op, "green", ArmOutputs(endpoint=endpoint, version="v2"))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert line.split()[:3] == ["green", shown, "ready"], line
    assert line.endswith(note) and "\x1b" not in line, repr(line)
