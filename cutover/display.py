"""What the operator sees during a hold: each colour's requests, 5xx rate and p95, and time left.

On a terminal, a table redrawn in place after every check (rich's `Live`). Elsewhere (CI logs, a
pipe), plain lines at a readable cadence, every `EVERY_S` seconds and once at the end, each
`key=value` so a script can read them:

    hold green 25%: held=10.0s left=20.0s | blue requests=312 5xx=0.00% p95=3.1ms | green ...

A p95 the source does not know shows as "-".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.live import Live
from rich.table import Table

from bluegreen.config import COLORS
from cutover.hold import Check
from cutover.sources.interface import ColorStats, Stats

EVERY_S = 10.0


def p95(s: ColorStats) -> str:
    return f"{s.p95_ms:.1f} ms" if s.p95_ms is not None else "-"


def rate(s: ColorStats) -> str:
    return f"{s.error_rate:.2%}" if s.requests else "-"


def _colors(stats: Stats) -> list[str]:
    return [*COLORS, *sorted(c for c in stats if c not in COLORS)]


def table(target: str, weight: int, stats: Stats, held: float, left: float) -> Table:
    """The hold as a table: one row per colour."""
    t = Table(
        title=f"hold {target} at {weight}%: {held:.0f} s held, {left:.0f} s left",
        title_justify="left",
    )
    for name in ("colour", "requests", "5xx", "p95", "time left"):
        t.add_column(name, justify="left" if name == "colour" else "right")
    for color in _colors(stats):
        s = stats.get(color, ColorStats())
        mark = " (new)" if color == target else ""
        t.add_row(f"{color}{mark}", str(s.requests), rate(s), p95(s), f"{left:.0f} s")
    return t


def line(target: str, weight: int, stats: Stats, held: float, left: float) -> str:
    """The hold as one plain line."""
    parts = [f"hold {target} {weight}%: held={held:.1f}s left={left:.1f}s"]
    for color in _colors(stats):
        s = stats.get(color, ColorStats())
        ms = f"{s.p95_ms:.1f}ms" if s.p95_ms is not None else "-"
        parts.append(f"{color} requests={s.requests} 5xx={s.error_rate:.2%} p95={ms}")
    return " | ".join(parts)


class Lines:
    """Plain lines: every `every` seconds held, and the last check of the hold."""

    def __init__(
        self, target: str, weight: int, out: Callable[[str], object], every: float = EVERY_S
    ) -> None:
        self.target, self.weight, self.out, self.every = target, weight, out, every
        self.last: tuple[Stats, float, float] | None = None
        self.due = every
        self.shown_last = False

    def __call__(self, stats: Stats, held: float, left: float) -> None:
        self.last = (stats, held, left)
        self.shown_last = False
        if held >= self.due or left <= 0:
            self._show()

    def _show(self) -> None:
        stats, held, left = self.last
        self.out(line(self.target, self.weight, stats, held, left))
        self.due = (held // self.every + 1) * self.every
        self.shown_last = True

    def end(self) -> None:
        """The hold is over (held, breached or interrupted): its last figures, once."""
        if self.last is not None and not self.shown_last:
            self._show()


@contextlib.contextmanager
def lines(
    target: str, weight: int, out: Callable[[str], object], every: float = EVERY_S
) -> Iterator[Check]:
    shown = Lines(target, weight, out, every)
    try:
        yield shown
    finally:
        shown.end()


@contextlib.contextmanager
def live_table(target: str, weight: int, seconds: float, console: Console) -> Iterator[Check]:
    """A table redrawn in place after every check, left on screen when the hold ends."""
    first = table(target, weight, {}, 0.0, seconds)
    with Live(first, console=console, auto_refresh=False, transient=False) as live:

        def check(stats: Stats, held: float, left: float) -> None:
            live.update(table(target, weight, stats, held, left), refresh=True)

        yield check


def for_hold(
    out: Callable[[str], object] = print, console: Console | None = None, every: float = EVERY_S
) -> Callable[[str, int, float], contextlib.AbstractContextManager[Check]]:
    """The procedure's `display`: the live table on a terminal, else plain lines through `out`."""
    console = console or Console()

    def show(target: str, weight: int, seconds: float) -> contextlib.AbstractContextManager[Check]:
        if console.is_terminal:
            return live_table(target, weight, seconds, console)
        return lines(target, weight, out, every)

    return show
