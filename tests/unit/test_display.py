"""What the operator sees during a hold (cutover/display.py): a live table on a terminal, plain
lines at a readable cadence elsewhere; an unknown p95 shows as "-"."""

from __future__ import annotations

import io
import re

from rich.console import Console

from cutover import display
from cutover.sources.interface import ColorStats

STATS = {
    "blue": ColorStats(requests=312, errors=0, p95_ms=3.14),
    "green": ColorStats(requests=104, errors=3, p95_ms=None),
}
LINE = re.compile(
    r"hold (?P<target>\w+) (?P<weight>\d+)%: held=(?P<held>[\d.]+)s left=(?P<left>[\d.]+)s"
    r"(?P<colors>( \| \w+ requests=\d+ 5xx=[\d.]+% p95=(-|[\d.]+ms))+)$"
)
COLOR = re.compile(r"(\w+) requests=(\d+) 5xx=([\d.]+)% p95=(-|[\d.]+)(?:ms)?")


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=100), out


def test_on_a_terminal_a_table_shows_each_colours_figures_and_time_left():
    console, out = terminal()
    show = display.for_hold(out=print, console=console)
    with show("green", 25, 30.0) as check:
        check(STATS, 12.0, 18.0)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # without terminal codes
    last = text[text.rindex("hold green at 25%") :]  # the table as it was last drawn
    assert "hold green at 25%: 12 s held, 18 s left" in last
    lines = last.splitlines()
    rows = {line.split()[1]: line for line in lines if re.match(r"│ (blue|green)", line)}
    assert re.search(r"│ blue\s+│\s+312 │\s+0\.00% │\s+3\.1 ms │\s+18 s │", rows["blue"])
    assert re.search(r"│ green \(new\)\s+│\s+104 │\s+2\.88% │\s+- │\s+18 s │", rows["green"])


def test_elsewhere_plain_lines_every_ten_seconds_and_at_the_end():
    said: list[str] = []
    show = display.for_hold(out=said.append, console=Console(file=io.StringIO()))
    with show("green", 100, 30.0) as check:
        for second in range(1, 31):  # a check a second, as `--interval 1s` does
            check(STATS, float(second), 30.0 - second)
    assert [LINE.match(line)["held"] for line in said] == ["10.0", "20.0", "30.0"]
    found = LINE.match(said[-1])
    assert (found["target"], found["weight"], found["left"]) == ("green", "100", "0.0")
    colors = {c: (int(r), float(e), p) for c, r, e, p in COLOR.findall(found["colors"])}
    assert colors == {"blue": (312, 0.0, "3.1"), "green": (104, 2.88, "-")}


def test_a_hold_cut_short_shows_its_last_figures_once():
    said: list[str] = []
    with display.lines("green", 25, said.append) as check:
        for second in range(1, 14):  # a breach at 13 s ends the hold early
            check(STATS, float(second), 30.0 - second)
    assert [LINE.match(line)["held"] for line in said] == ["10.0", "13.0"]


def test_an_unknown_p95_is_a_dash():
    assert display.p95(ColorStats(10, 0, None)) == "-"
    assert display.p95(ColorStats(10, 0, 12.345)) == "12.3 ms"
