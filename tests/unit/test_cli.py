"""The `bluegreen` command refuses bad arguments before anything is read or changed: each error
names the argument, the value it got and what is allowed, and the command exits 2."""

from __future__ import annotations

import pytest

from cutover.cli import duration


@pytest.mark.parametrize(("text", "seconds"), [("30", 30), ("30s", 30), ("2m", 120), ("1h", 3600)])
def test_durations(text, seconds):
    assert duration(text) == seconds
