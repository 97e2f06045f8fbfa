"""The reference service bounds what a client can make it keep, and keeps "once" within it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from bluegreen import probe
from tests.support.sandbox import ROOT, free_ports

APP = f"{ROOT}/app/server.py"


@pytest.fixture
def arm():
    [port] = free_ports(1)
    argv = [sys.executable, APP, "--color=green", "--version=v2", f"--port={port}"]
    bounds = ["--max-keys=3", "--max-keys-per-client=2", "--journal-max=4", "--max-body-kb=1"]
    proc = subprocess.Popen([*argv, *bounds], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        probe.wait_until(url + "/healthz/ready", lambda a: a.status == 200, timeout=10)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def post(url: str, key: str | None = None, body: bytes = b"{}", who: str = "") -> probe.Answer:
    headers = {"Idempotency-Key": key} if key else {}
    if who:
        headers["Authorization"] = f"Bearer {who}"  # a client is told apart by it
    return probe.request(url + "/orders", "POST", headers=headers, body=body)


def journal(url: str) -> tuple[list[dict], str]:
    answer = probe.request(url + "/_arm/writes")
    return json.loads(answer.body), answer.headers["x-bluegreen-journal-dropped"]


def test_a_new_key_past_a_cap_is_refused_unapplied_while_kept_keys_are_still_answered(arm):
    assert post(arm, "a", who="ann").status == post(arm, "b", who="ann").status == 200
    share = post(arm, "c", who="ann")  # ann holds her whole share: others still get places
    assert (share.status, share.headers["retry-after"]) == (429, "60")
    assert post(arm, "c", who="bob").status == 200
    full = post(arm, "d", who="cyd")  # every place is taken
    assert (full.status, full.headers["retry-after"]) == (503, "60")
    assert [w["key"] for w in journal(arm)[0]][-3:] == ["a", "b", "c"], "refused: not applied"
    again = post(arm, "a", who="ann")
    assert again.status == 200
    assert journal(arm)[0][-1] == {
        "method": "POST",
        "path": "/orders",
        "key": "a",
        "bytes": 2,
        "replay": None,
        "duplicate": True,
    }


def test_the_journal_lists_the_last_writes_and_says_how_many_it_let_go(arm):
    for _ in range(6):
        assert post(arm).status == 200
    entries, dropped = journal(arm)
    assert (len(entries), dropped) == (4, "2")


def test_a_body_over_the_limit_and_a_malformed_key_are_refused_and_not_kept(arm):
    assert post(arm, "big", body=b"x" * 1025).status == 413
    assert post(arm, "x" * 256).status == 400
    assert post(arm, "has space").status == 400
    assert journal(arm) == ([], "0")
    assert post(arm, "big", body=b"x" * 1024).status == 200, "the key was never taken"


def raw(url: str, head: str, then: bytes = b"") -> bytes:
    """Send a request head as written (and `then`), read the answer until the arm closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(head.encode() + b"\r\n" + then)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    "method, length, status",
    [("POST", "-1", 400), ("POST", "1e3", 400), ("GET", "-1", 400), ("GET", "2000", 413)],
)
def test_a_body_not_sized_by_a_plain_content_length_is_refused_unread(arm, method, length, status):
    # A negative length would read to the end of the stream: the arm answers and closes instead,
    # while the client is still sending.
    head = f"{method} /orders HTTP/1.1\r\nHost: arm\r\nContent-Length: {length}\r\n"
    answer = raw(arm, head, b"x" * 100)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    assert journal(arm) == ([], "0")


def test_a_chunked_body_is_refused_with_411(arm):
    head = "POST /orders HTTP/1.1\r\nHost: arm\r\nTransfer-Encoding: chunked\r\n"
    answer = raw(arm, head, b"5\r\nhello\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 411 "), answer[:200]
    assert journal(arm) == ([], "0")


@pytest.mark.parametrize(
    "flag", ["--max-keys=0", "--max-keys-per-client=0", "--journal-max=-1", "--max-body-kb=0"]
)
def test_a_bound_that_is_not_positive_is_refused_naming_the_flag(flag):
    argv = [sys.executable, APP, "--color=green", "--version=v2", "--port=1", flag]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    name, value = flag.split("=")
    assert done.returncode == 2
    assert f"{name} must be above 0, got {value}" in done.stderr
