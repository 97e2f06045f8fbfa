"""The one table that turns an operation's outcome into the `bluegreen` command's exit code
(cutover/cli.py `EXIT_CODES`): every outcome has one, and the codes are the command's own."""

from __future__ import annotations

import pytest

from cutover.cli import EXIT_CODES, exit_code
from cutover.results import Outcome, Report


def test_every_outcome_has_an_exit_code():
    assert set(EXIT_CODES) == set(Outcome)


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        (Outcome.DONE, 0),  # flip done, traffic back, hold held, status shown
        (Outcome.UNCHANGED, 0),  # already live; the edge already served it; unmoved since
        (Outcome.REFUSED, 1),
        (Outcome.ROLLED_BACK, 1),  # a flip or watch whose hold broke
        (Outcome.NOT_HELD, 1),
        (Outcome.FAILED, 1),
        (Outcome.NOT_READY, 1),
        (Outcome.BAD_INPUT, 1),
        (Outcome.UNREACHABLE, 1),
        (Outcome.INTERRUPTED, 130),
    ],
)
def test_the_exit_codes_are_the_commands_own(outcome, code):
    assert exit_code(Report(outcome, reason="why")) == code
