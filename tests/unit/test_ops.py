"""The operator commands refuse bad arguments before anything changes."""

import argparse
import subprocess
import sys

import pytest

from cutover.ops import parse_duration, parse_steps
from cutover.workspace import ROOT


@pytest.mark.parametrize(("text", "seconds"), [("30", 30), ("30s", 30), ("2m", 120), ("1h", 3600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5,25", "25,5,100", "0,100", "five,100", ""])
def test_canary_steps_must_increase_to_100(text):
    with pytest.raises(argparse.ArgumentTypeError, match="--canary must be increasing percentages"):
        parse_steps(text)


def test_the_flip_command_names_what_is_allowed():
    out = subprocess.run(
        [sys.executable, "-m", "cutover.ops", "flip", "purple"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "argument color: invalid choice: 'purple' (choose from 'blue', 'green')" in out.stderr
