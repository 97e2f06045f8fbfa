"""One writer at a time through real flips: `bluegreen writer` on both arms, wrapping the reference
consumer (app/consumer.py) over one shared job store, while `pulumi up -s live` moves the pointer
ten times and `bluegreen rollback` moves it back, with users' requests flowing through the edge."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time

from bluegreen import probe

FLIPS = 10
EVENT = re.compile(r"^writer (blue|green) (started|stopped|exited) .*?at=([0-9.]+)")


def intervals(output: str) -> list[tuple[str, float, float]]:
    """(colour, started, ended) of each run of the command, from the wrapper's log lines."""
    runs, open_at = [], {}
    for line in output.splitlines():
        found = EVENT.match(line)
        if not found:
            continue
        color, event, at = found.group(1), found.group(2), float(found.group(3))
        if event == "started":
            open_at[color] = at
        elif color in open_at:
            runs.append((color, open_at.pop(color), at))
    assert not open_at, f"a run never ended: {open_at}"
    return runs


def done_by(db: str) -> list[tuple[int, str, int]]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT job, color, fence FROM log ORDER BY seq").fetchall()


def wait_for_work(db: str, color: str, fence_above: int, timeout: float = 60) -> int:
    """The fence under which `color`'s consumer did its first job after the pointer moved."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _, c, fence in reversed(done_by(db)):
            if c == color and fence > fence_above:
                return fence
        time.sleep(0.1)
    raise AssertionError(f"{color}'s writer did no job with a fence above {fence_above}")


def test_two_writers_do_each_job_once_through_ten_flips_and_a_rollback(bare_project, tmp_path):
    project = bare_project
    project.ws.config_set("live", "bluegreen:writerHandoverSeconds", "2")
    project.up_all(active="blue")
    db = str(tmp_path / "jobs.sqlite3")
    consumer = [sys.executable, os.path.join(project.dir, "app", "consumer.py"), "--db", db]
    assert probe.request(project.edge_url).status == 200
    subprocess.run([*consumer, "--add-jobs", "200000"], check=True)

    failures, served = [], [0]
    stop = threading.Event()

    def users() -> None:
        while not stop.is_set():
            for method, body in (("GET", None), ("POST", b"{}")):
                answer = probe.request(project.edge_url, method=method, body=body, timeout=5)
                served[0] += 1
                if answer.status is None or answer.status >= 500:
                    failures.append((method, answer.status, answer.error))

    def writer(color: str):
        return project.bluegreen(
            "writer",
            "--color",
            color,
            "--edge",
            project.edge_url.rstrip("/"),
            "--poll",
            "0.1s",
            "--grace",
            "5s",
            "--",
            *consumer,
            "--color",
            color,
            "--interval",
            "0.005",
        )

    load = threading.Thread(target=users)
    load.start()
    try:
        with writer("blue") as blue, writer("green") as green:
            fence = wait_for_work(db, "blue", 0)
            active = "blue"
            for _ in range(FLIPS):
                active = "green" if active == "blue" else "blue"
                project.ws.config_set("live", "bluegreen:activeColor", active)
                project.ws.up("live")
                fence = wait_for_work(db, active, fence)
            with project.bluegreen("rollback") as rollback:
                out = rollback.communicate(timeout=300)[0]
                assert rollback.returncode == 0, out
            active = "green" if active == "blue" else "blue"
            last = wait_for_work(db, active, fence)
            logs = {}
            for color, proc in (("blue", blue), ("green", green)):
                proc.send_signal(signal.SIGTERM)
                logs[color] = proc.communicate(timeout=60)[0]
                assert proc.returncode == 0, logs[color]
    finally:
        stop.set()
        load.join(30)

    work = done_by(db)
    jobs = [job for job, _, _ in work]
    assert len(jobs) == len(set(jobs)), "a job was done twice"
    with sqlite3.connect(db) as c:
        (marked,) = c.execute("SELECT COUNT(*) FROM jobs WHERE done_by IS NOT NULL").fetchone()
    assert marked == len(jobs)
    fences = [f for _, _, f in work]
    assert fences == sorted(fences), "a job was done under an older fence after a newer one"
    assert len(set(fences)) == FLIPS + 2 and last == max(fences)
    by_fence = {f: c for _, c, f in work}
    assert len({(f, c) for _, c, f in work}) == len(by_fence), "two colours under one fence"

    runs = [r for color in logs for r in intervals(logs[color])]
    blue_runs = [r for r in runs if r[0] == "blue"]
    green_runs = [r for r in runs if r[0] == "green"]
    assert len(blue_runs) >= FLIPS // 2 and len(green_runs) >= FLIPS // 2
    for _, b_start, b_end in blue_runs:
        for _, g_start, g_end in green_runs:
            assert b_end <= g_start or g_end <= b_start, (
                f"blue ran {b_start:.3f}-{b_end:.3f} while green ran {g_start:.3f}-{g_end:.3f}"
            )
    assert served[0] > 100 and failures == [], failures[:5]
