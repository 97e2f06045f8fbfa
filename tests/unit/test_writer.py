"""`bluegreen-writer`'s arguments and rules, in process (the wrapper as a real process around the
reference consumer: tests/integration/test_writer.py)."""

from __future__ import annotations

import pytest

from agents.arm import lease
from agents.arm.writer import grace_within
from agents.arm.writer import main as writer_main
from cutover.cli import main


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--color", "green", "--", "true"], None, ["--edge", "$BLUEGREEN_EDGE_URL"]),
        (
            ["--color", "green", "--edge", "ftp://edge", "--", "true"],
            None,
            ["argument --edge", "'ftp://edge'", "http:// or https://"],
        ),
        (
            ["--color", "green", "--", "true"],
            "http://",
            ["$BLUEGREEN_EDGE_URL", "'http://'", "http:// or https://"],
        ),
        (
            ["--color", "purple", "--edge", "http://edge", "--", "true"],
            None,
            ["argument --color", "'purple'", "'blue', 'green'"],
        ),
        (["--color", "green", "--edge", "http://edge"], None, ["no command to run", "--"]),
        (["--color", "green", "--edge", "http://edge", "--"], None, ["no command to run"]),
        (
            ["--color", "green", "--edge", "http://edge", "--", "./no-such-writer"],
            None,
            ["cannot run", "'./no-such-writer'"],
        ),
        (
            ["--color", "green", "--edge", "http://edge", "--poll", "0", "--", "true"],
            None,
            ["argument --poll", "'0'", "more than 0"],
        ),
    ],
)
@pytest.mark.parametrize("command", ["bluegreen-writer", "bluegreen writer"])
def test_bad_input_exits_2_naming_what_is_wrong(monkeypatch, capsys, args, env, says, command):
    if env is None:
        monkeypatch.delenv(lease.EDGE_ENV, raising=False)
    else:
        monkeypatch.setenv(lease.EDGE_ENV, env)
    with pytest.raises(SystemExit) as exit:
        if command == "bluegreen-writer":
            writer_main(args)  # what a node runs
        else:
            main(["writer", *args])  # the same, for operators
    assert exit.value.code == 2
    err = capsys.readouterr().err
    for text in says:
        assert text in err


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"[]", "not a JSON object"),
        (b'{"fence": 1, "since": 0, "handover": 0, "now": 0}', "holder is missing"),
        (b'{"holder": "green", "since": 0, "handover": 0, "now": 0}', "fence is null"),
        (b'{"holder": "green", "fence": true, "since": 0, "handover": 0, "now": 0}', "fence is"),
        (b'{"holder": "green", "fence": 7.5, "since": 0, "handover": 0, "now": 0}', "integer"),
        (b'{"holder": "green", "fence": 7, "since": 0, "handover": -1, "now": 0}', "below 0"),
        (b'{"holder": "green", "fence": 7, "since": 0, "handover": 0, "now": NaN}', "finite"),
    ],
)
def test_a_lease_that_is_not_whole_is_unreadable(body, why):
    with pytest.raises(lease.Unreadable, match=why):
        lease.parse(body)


def test_the_grace_ends_within_the_handover():
    assert grace_within(10.0, 3.0, 0.2) == pytest.approx(2.6)
    assert grace_within(1.0, 3.0, 0.2) == 1.0
    assert grace_within(10.0, 0.0, 0.2) == 0.1  # floored: the command gets a chance to finish
