"""`bluegreen-writer` runs an arm's background writer only while the edge's lease lets its colour
write: real processes on loopback, the real wrapper (`python -m agents.arm.writer`, what a node's
`bluegreen-writer` runs, from a directory with no Pulumi project, as on an arm host) around the
real app/consumer.py, and a stand-in edge in the test serving a lease document the test changes.

Everything is judged from what a user can see: the wrapper's event lines, /proc, and the
consumer's database. Waits have deadlines; nothing asserts on how long anything took.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agents.arm import lease
from agents.arm.writer import Writer
from tests.support import leaks
from tests.support.sandbox import ROOT, free_ports

CONSUMER = os.path.join(ROOT, "app", "consumer.py")


POLL = "0.1s"


WAIT = 20.0  # seconds for anything to happen; generous, since other tests run alongside


class Edge:
    """The edge's lease endpoint, in a thread: the test moves the lease, breaks it or stops it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.doc: dict = {"holder": None, "fence": 1, "since": time.time(), "handover": 0}
        self.answer = "lease"  # or "500", "garbage"
        edge = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with edge.lock:
                    doc = dict(edge.doc, now=time.time(), generation="test")
                    answer = edge.answer
                if self.path != lease.LEASE_PATH or answer == "500":
                    self.send_response(404 if answer != "500" else 500)
                    self.end_headers()
                    return
                body = json.dumps(doc).encode() if answer == "lease" else b'{"holder": "gr'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_ports(1)[0]), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set(self, **fields: object) -> dict:
        with self.lock:
            self.doc.update(fields)
            return dict(self.doc)

    def move(self, holder: str | None, handover: float = 0.0) -> dict:
        """A change of pointer: a new holder, a higher fence, the handover from now."""
        with self.lock:
            fence = self.doc["fence"] + 1
        return self.set(holder=holder, fence=fence, since=time.time(), handover=handover)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def edge() -> Iterator[Edge]:
    e = Edge()
    try:
        yield e
    finally:
        e.close()


def alive(pid: int) -> bool:
    """Running (a zombie has exited: its parent just has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return False


def environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [item.decode().split("=", 1) for item in f.read().split(b"\0") if b"=" in item]
    return dict(pairs)


def until(check, what: str, timeout: float = WAIT, show=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f}s for {what}\n{show()}")
        time.sleep(0.05)


class Wrapper:
    """One `bluegreen writer` process, its event lines (stdout, with its command's) in a file."""

    def __init__(self, tmp: Path, color: str, edge: Edge, command: list[str], *flags: str):
        self.color, self.out = color, tmp / f"{color}-writer.log"
        env = dict(os.environ, PYTHONPATH=ROOT)  # the suite's marker comes along
        env.pop(lease.EDGE_ENV, None)
        argv = [sys.executable, "-m", "agents.arm.writer", "--color", color]
        argv += ["--edge", edge.url, "--poll", POLL, *flags, "--", *command]
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(argv, cwd=tmp, env=env, stdout=out, stderr=out)

    def text(self) -> str:
        return self.out.read_text()

    def events(self, kind: str | None = None) -> list[dict[str, str]]:
        found = []
        for line in self.text().splitlines():
            words = shlex.split(line) if line.startswith(f"writer {self.color} ") else []
            if len(words) >= 3 and (kind is None or words[2] == kind):
                found.append({"event": words[2], **dict(w.split("=", 1) for w in words[3:])})
        return found

    def wait(self, kind: str, count: int = 1, **match: str) -> dict[str, str]:
        def seen() -> list[dict[str, str]]:
            hits = [e for e in self.events(kind) if all(e.get(k) == v for k, v in match.items())]
            return hits[count - 1 : count]

        return until(seen, f"{self.color} writer event {kind} {match} #{count}", show=self.text)[0]

    def pids(self) -> list[int]:
        return [int(e["pid"]) for e in self.events("started")]

    def stop(self) -> None:
        """SIGCONT (a test may have paused it), SIGTERM, then SIGKILL; and what it started."""
        for sig in (signal.SIGCONT, signal.SIGTERM):
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        marker = f"{leaks.MARKER}={os.environ[leaks.MARKER]}"
        for pid in self.pids():
            with contextlib.suppress(OSError):
                if alive(pid) and marker in open(f"/proc/{pid}/environ").read():
                    os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def writers(tmp_path: Path, edge: Edge) -> Iterator:
    started: list[Wrapper] = []

    def start(color: str, command: list[str], *flags: str) -> Wrapper:
        started.append(Wrapper(tmp_path, color, edge, command, *flags))
        return started[-1]

    try:
        yield start
    finally:
        for w in started:
            w.stop()


def at_work(w: Wrapper, pid: int) -> None:
    """The consumer has set its SIGTERM handler (before that, a SIGTERM ends it at once)."""
    until(lambda: f"pid={pid} consuming" in w.text(), f"consumer {pid} at work", show=w.text)


def consumer(db: Path, color: str, interval: str = "0.02") -> list[str]:
    return [sys.executable, CONSUMER, "--db", str(db), "--color", color, "--interval", interval]


def seed(db: Path, jobs: int) -> None:
    subprocess.run([sys.executable, CONSUMER, "--db", str(db), "--add-jobs", str(jobs)], check=True)


def rows(db: Path, sql: str, *params: object) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return conn.execute(sql, params).fetchall()


def test_starts_only_for_its_colour_once_the_handover_has_passed(edge, writers, tmp_path):
    db = tmp_path / "queue.db"
    seed(db, 1000)
    edge.set(holder="blue")
    green = writers("green", consumer(db, "green"))
    green.wait("lease", holder="blue", fence="1")
    time.sleep(0.5)  # several polls of a lease that is blue's
    assert green.events("started") == []

    moved = edge.move("green", handover=1.5)
    started = green.wait("started")
    assert started["fence"] == "2"
    assert float(started["at"]) >= moved["since"] + moved["handover"]
    env = environ(int(started["pid"]))
    assert env["BLUEGREEN_FENCE"] == "2"
    assert env["BLUEGREEN_COLOR"] == "green"
    assert env["BLUEGREEN_LEASE_URL"] == edge.url + "/_bluegreen/lease"
    done = until(lambda: rows(db, "SELECT DISTINCT color, fence FROM log"), "a job done")
    assert done == [("green", 2)]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("moved", "lease moved to blue"),
        ("frozen", "writes frozen (holder null)"),
        ("500", "lease unreadable: HTTP 500"),
        ("garbage", "lease unreadable: not JSON"),
        ("down", "lease unreadable: "),
    ],
)
def test_stops_its_command_when_the_lease_is_not_its_own(edge, writers, tmp_path, change, why):
    db = tmp_path / "queue.db"
    seed(db, 1000)
    # A handover of 1 s gives the stop a grace of 0.8 s: time for the consumer to finish its
    # transaction on a loaded machine (with none, the grace is the floor, 0.1 s).
    edge.move("green", handover=1.0)
    green = writers("green", consumer(db, "green"))
    pid = int(green.wait("started")["pid"])
    at_work(green, pid)
    if change == "moved":
        edge.move("blue", handover=1.0)
    elif change == "frozen":
        edge.set(holder=None)
    elif change == "down":
        edge.close()
    else:
        edge.answer = change
    stopped = green.wait("stopped")
    assert stopped["why"].startswith(why)
    assert stopped["pid"] == str(pid)
    assert stopped["code"] == "0"  # the consumer finished its transaction and exited on SIGTERM
    assert not alive(pid)
    assert len(green.events("started")) == 1  # and not started again


def test_restarts_with_the_new_fence_when_the_pointer_moved_between_polls(edge, writers, tmp_path):
    db = tmp_path / "queue.db"
    seed(db, 1000)
    edge.move("green")
    green = writers("green", consumer(db, "green"))
    first = green.wait("started")
    # green -> blue -> green between two polls: green holds the lease again, with fence 4
    moved = edge.set(fence=4, since=time.time(), handover=1.0)
    stopped = green.wait("stopped")
    assert stopped["why"] == "fence changed from 2 to 4"
    assert not alive(int(first["pid"]))
    second = green.wait("started", count=2)
    assert second["fence"] == "4"
    assert float(second["at"]) >= moved["since"] + moved["handover"]
    assert environ(int(second["pid"]))["BLUEGREEN_FENCE"] == "4"


def test_a_command_ignoring_sigterm_is_killed_after_the_grace_the_handover_allows(
    edge, writers, tmp_path
):
    stubborn = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
    ]
    edge.move("green", handover=1.0)
    green = writers("green", stubborn, "--grace", "10s")
    shortened = green.wait("grace")
    assert (shortened["grace"], shortened["asked"]) == ("0.800", "10.0")  # 1.0 - 2 * 0.1
    pid = int(green.wait("started")["pid"])
    edge.move("blue", handover=1.0)
    green.wait("killing", pid=str(pid))
    stopped = green.wait("stopped")
    assert stopped["code"] == str(-signal.SIGKILL)
    assert not alive(pid)


@pytest.mark.parametrize("code", [0, 3])
def test_a_command_that_exits_by_itself_is_restarted_after_a_growing_wait(edge, writers, code):
    edge.move("green")
    green = writers("green", [sys.executable, "-c", f"import sys; sys.exit({code})"])
    first = green.wait("exited")
    assert (first["code"], first["why"]) == (str(code), "exited by itself; restart in 1.0s")
    second = green.wait("exited", count=2)
    assert (second["code"], second["why"]) == (str(code), "exited by itself; restart in 2.0s")
    assert len(green.events("started")) == 2
    assert float(green.events("started")[1]["at"]) > float(first["at"])


def test_killing_the_wrapper_leaves_no_command_running(edge, writers, tmp_path):
    db = tmp_path / "queue.db"
    seed(db, 1000)
    edge.move("green")
    green = writers("green", consumer(db, "green"))
    pid = int(green.wait("started")["pid"])
    at_work(green, pid)
    green.proc.kill()
    green.proc.wait()
    until(lambda: not alive(pid), f"the consumer {pid} to go with its wrapper")
    assert "consumer green fence=2 stopped after" in green.text()  # SIGTERM, not SIGKILL


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_signal_to_the_wrapper_stops_its_command_first(edge, writers, tmp_path, sig, code):
    db = tmp_path / "queue.db"
    seed(db, 1000)
    edge.move("green")
    green = writers("green", consumer(db, "green"))
    pid = int(green.wait("started")["pid"])
    at_work(green, pid)
    green.proc.send_signal(sig)
    assert green.proc.wait(WAIT) == code
    assert green.wait("stopped")["code"] == "0"
    assert not alive(pid)


def intervals(w: Wrapper) -> list[tuple[float, float]]:
    """(started, stopped or exited) of each command the wrapper ran, by its log."""
    began = {e["pid"]: float(e["at"]) for e in w.events("started")}
    ends = [e for e in w.events() if e["event"] in ("stopped", "exited")]
    assert sorted(e["pid"] for e in ends) == sorted(began), w.text()
    return sorted((began[e["pid"]], float(e["at"])) for e in ends)


def test_two_writers_never_overlap_and_do_every_job_once(edge, writers, tmp_path):
    db = tmp_path / "queue.db"
    jobs = 300
    seed(db, jobs)
    edge.move("blue")
    blue = writers("blue", consumer(db, "blue", "0.01"))
    green = writers("green", consumer(db, "green", "0.01"))
    side = {"blue": blue, "green": green}
    holder = "blue"
    for n in range(1, 6):
        side[holder].wait("started", count=(n + 1) // 2)
        time.sleep(0.3)  # let it do some jobs
        holder = "green" if holder == "blue" else "blue"
        edge.move(holder, handover=1.0)
    side[holder].wait("started", count=3)
    pending = "SELECT COUNT(*) FROM jobs WHERE done_by IS NULL"
    until(lambda: rows(db, pending) == [(0,)], "every job done", timeout=90)
    blue.stop()
    green.stop()

    assert rows(db, "SELECT COUNT(*), COUNT(DISTINCT job) FROM log") == [(jobs, jobs)]
    by_color = dict(rows(db, "SELECT color, COUNT(*) FROM log GROUP BY color"))
    assert by_color["blue"] > 0 and by_color["green"] > 0
    spans = {color: intervals(w) for color, w in side.items()}
    assert len(spans["blue"]) == 3 and len(spans["green"]) == 3
    for b in spans["blue"]:
        for g in spans["green"]:
            assert b[1] <= g[0] or g[1] <= b[0], f"blue ran {b} while green ran {g}"
    for color, at in rows(db, "SELECT color, at FROM log"):
        assert any(start <= at <= end for start, end in spans[color]), (color, at)
    assert "fenced out" not in blue.text() + green.text()  # the lease alone kept them apart


def test_the_fence_refuses_a_writer_whose_wrapper_cannot_stop_it(edge, writers, tmp_path):
    db = tmp_path / "queue.db"
    seed(db, 5000)
    edge.move("blue")
    blue = writers("blue", consumer(db, "blue"))
    green = writers("green", consumer(db, "green"))
    stale = int(blue.wait("started")["pid"])
    until(lambda: rows(db, "SELECT COUNT(*) FROM log")[0][0] >= 5, "blue doing jobs")
    blue.proc.send_signal(signal.SIGSTOP)  # paused: it cannot stop its consumer
    try:
        edge.move("green", handover=0.5)
        green.wait("started")
        until(lambda: not alive(stale), "blue's consumer to be refused by the store")
        assert "consumer blue fenced out: fence 2 < highest 3" in blue.text()
        first_green = rows(db, "SELECT MIN(seq) FROM log WHERE color = 'green'")[0][0]
        assert first_green is not None
        late = rows(db, "SELECT COUNT(*) FROM log WHERE color = 'blue' AND seq > ?", first_green)
        assert late == [(0,)]
    finally:
        blue.proc.send_signal(signal.SIGCONT)
    exited = blue.wait("exited", pid=str(stale))
    assert exited["code"] == "75"
    assert exited["why"] == "exited by itself"  # the lease is green's: no restart


def test_a_command_gone_before_its_stop_is_logged_as_exited_not_stopped():
    """The store fences a command out in the same poll as the lease moves: the wrapper that then
    comes to stop it must say that it had exited, not claim a stop it never sent."""
    lines: list[str] = []
    now = time.time()
    green = lease.ServedLease(holder="green", fence=2, since=now - 10, handover=0.5, now=now)

    class Reader:
        url = "http://127.0.0.1:9/_bluegreen/lease"

        def read(self) -> lease.ServedLease:
            return green

    w = Writer(
        "green", Reader(), [sys.executable, "-c", "pass"], poll=0.1, grace=1, out=lines.append
    )
    w.start(green)
    pid = w.child.pid
    until(lambda: os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT), "it to exit")
    w.stop("lease moved to blue")
    ends = [
        line for line in lines if line.startswith(("writer green stopped", "writer green exited"))
    ]
    assert len(ends) == 1 and ends[0].startswith("writer green exited"), lines
    assert 'why="exited by itself"' in ends[0]
    assert not any("stopping" in line for line in lines)  # no SIGTERM went to a reaped group
