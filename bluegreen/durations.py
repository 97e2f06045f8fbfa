"""Durations as people type them on a command line: `30`, `30s`, `2m` or `1h`. One rule for the
`bluegreen` command and the host agents alike."""

from __future__ import annotations

import argparse

UNITS = {"s": 1, "m": 60, "h": 3600}


def duration(text: str, positive: bool = False) -> float:
    """`30`, `30s`, `2m` or `1h` as seconds (an argparse type: a bad one names what is allowed)."""
    try:
        seconds = float(text[:-1]) * UNITS[text[-1]] if text[-1:] in UNITS else float(text)
    except ValueError:
        seconds = -1.0
    if seconds < 0 or (positive and seconds == 0):
        least = "more than 0" if positive else "0 or more"
        raise argparse.ArgumentTypeError(
            f"must be a duration of {least} seconds such as 30s, 2m or 1h; got {text!r}"
        )
    return seconds


def interval(text: str) -> float:
    return duration(text, positive=True)
