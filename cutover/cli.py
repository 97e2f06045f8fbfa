"""The `bluegreen` command (pyproject.toml's console script): the cutover from a terminal.

    bluegreen flip green [--canary 5,25,100] [--hold 30s] [--freeze-writes] [--keep-holding]
    bluegreen rollback
    bluegreen status [--json]
    bluegreen watch [--hold 30s] [--if-moved-since before.json] [--verdict-file verdict.json]
    bluegreen commit-rollback --verdict-file verdict.json [--branch main]
    bluegreen writer --color green [--edge URL] [--poll 0.2s] [--grace 10s] -- COMMAND [ARG...]

Each runs against the edge stack (`--stack`, else $BLUEGREEN_LIVE_STACK, else live) of the
project in the current directory or above, and shows every pulumi step as it would be typed.
`commit-rollback` runs only git (and gh): it commits the pointer revert a watch wrote
(cutover/commit_rollback.py). `writer` runs on an arm host, outside the project and without
Pulumi: it runs a background writer while the edge's lease lets its colour write
(agents/arm/writer.py).
A bad argument exits 2 before anything is read or changed.

This module is the parser and `main`; what each subcommand runs is cutover/commands.py, which
returns a `Report` (cutover/results.py), and `EXIT_CODES` here turns its outcome into the exit
code.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import TYPE_CHECKING

from agents.arm import writer
from bluegreen import config
from bluegreen.durations import duration, interval
from bluegreen.live_stack import LiveOutputs
from cutover import ci, notify
from cutover.results import Outcome, Report

if TYPE_CHECKING:
    from cutover.workspace import Workspace

STACK_ENV = "BLUEGREEN_LIVE_STACK"

EXIT_CODES: dict[Outcome, int] = {
    Outcome.DONE: 0,
    Outcome.UNCHANGED: 0,
    Outcome.REFUSED: 1,
    Outcome.ROLLED_BACK: 1,
    Outcome.NOT_HELD: 1,
    Outcome.FAILED: 1,
    Outcome.NOT_READY: 1,
    Outcome.BAD_INPUT: 1,
    Outcome.UNREACHABLE: 1,
    Outcome.INTERRUPTED: 130,
}
"""The one place an operation's outcome becomes the command's exit code. (A bad argument exits 2,
argparse's, before any operation runs.)"""


def exit_code(report: Report) -> int:
    return EXIT_CODES[report.outcome]


def steps(text: str) -> list[int]:
    """`5,25,100`: canary steps in percent, increasing, ending with 100."""
    try:
        found = [int(s) for s in text.split(",")]
    except ValueError:
        found = []
    if not found or found != sorted(set(found)) or found[0] < 1 or found[-1] != 100:
        raise argparse.ArgumentTypeError(
            "must be increasing percentages from 1 to 100, comma-separated and ending with 100, "
            f"such as 5,25,100; got {text!r}"
        )
    return found


def error_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(
            f"must be a share from 0 to 1, such as 0.01 for 1%; got {text!r}"
        )
    return value


def ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError(
            f"must be a share of the compared median from 0 to 10, such as 0.15 for 15%; "
            f"got {text!r}"
        )
    return value


@dataclasses.dataclass(frozen=True)
class Before:
    """--if-moved-since: a file `bluegreen status --json` wrote, read."""

    path: str
    served: LiveOutputs


def before_file(text: str) -> Before:
    try:
        return Before(text, ci.read_before(text))
    except ci.BadFile as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def verdict_out(text: str) -> str:
    """--verdict-file of watch: a file to write, in a directory that is there."""
    folder = os.path.dirname(os.path.abspath(text))
    if not text or os.path.isdir(text) or not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(
            f"must be a file to write the verdict to, in a directory that exists; got {text!r}"
        )
    return text


def verdict_in(text: str) -> dict:
    """--verdict-file of commit-rollback: the verdict of a watch that rolled back."""
    try:
        return ci.read_verdict(text)
    except ci.BadFile as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="bluegreen",
        description="The blue/green cutover: flip, rollback, status, watch, shadow.",
    )
    stack = argparse.ArgumentParser(add_help=False)
    stack.add_argument(
        "--stack",
        default=argparse.SUPPRESS,
        help=f"the edge stack (default: ${STACK_ENV}, else live)",
    )
    top.add_argument("--stack", help=f"the edge stack (default: ${STACK_ENV}, else live)")
    watching = argparse.ArgumentParser(add_help=False)
    watching.add_argument(
        "--interval", type=interval, default=1.0, help="check the stop rules this often (1s)"
    )
    watching.add_argument(
        "--error-tolerance",
        type=error_rate,
        help="roll back when the 5xx share exceeds the compared colour's by more than this "
        "(default: bluegreen:holdErrorTolerance)",
    )
    watching.add_argument(
        "--latency-tolerance",
        type=ratio,
        help="roll back when slower than the compared colour by more than this share of its "
        "median (default: bluegreen:holdLatencyTolerance)",
    )
    watching.add_argument(
        "--keep-holding",
        action="store_true",
        help="when the hold ends with too little traffic to judge, keep holding until it can "
        "(default: roll back, since no data is not a pass)",
    )
    sub = top.add_subparsers(dest="command", required=True)
    f = sub.add_parser(
        "flip", parents=[stack, watching], help="move traffic to a colour, holding and watching"
    )
    f.add_argument("color", choices=config.COLORS, help="the colour to move traffic to")
    f.add_argument("--canary", type=steps, help="steps in percent, e.g. 5,25,100 (default: 100)")
    f.add_argument("--hold", type=duration, default=30.0, help="watch each step this long (30s)")
    f.add_argument(
        "--freeze-writes", action="store_true", help="read-only edge for the flip and its hold"
    )
    f.add_argument(
        "--shadow",
        type=duration,
        metavar="DURATION",
        help="first judge the colour on the live requests the edge mirrors to it this long "
        "(default: as long as --hold when bluegreen:shadow is on; 0s skips)",
    )
    sh = sub.add_parser(
        "shadow",
        parents=[stack, watching],
        help="judge the idle colour on mirrored live requests (bluegreen:shadow), moving nobody",
    )
    sh.add_argument("--hold", type=duration, default=30.0, help="compare this long (30s)")
    sub.add_parser("rollback", parents=[stack], help="flip back to the other colour now")
    st = sub.add_parser(
        "status", parents=[stack], help="live colour, weights, arms, maintenance, last flips"
    )
    st.add_argument(
        "--json",
        action="store_true",
        help="print the edge's colour, weights, maintenance and the arms' versions as JSON",
    )
    q = sub.add_parser(
        "queue",
        parents=[stack],
        help="the maintenance queue's intents: list them, retry or drop dead letters",
    )
    q.add_argument("action", nargs="?", default="list", choices=("list", "retry", "drop"))
    q.add_argument("receipt", nargs="?", help="the intent's receipt id (r-...)")
    q.add_argument("--all", action="store_true", help="retry every dead letter")
    w = sub.add_parser(
        "watch",
        parents=[stack, watching],
        help="hold and watch the colour taking traffic now; roll back on a breach",
    )
    w.add_argument("--hold", type=duration, default=30.0, help="watch this long (30s)")
    w.add_argument(
        "--if-moved-since",
        type=before_file,
        metavar="BEFORE_JSON",
        help="watch only if the traffic moved since this `status --json` record; else exit 0",
    )
    w.add_argument(
        "--verdict-file",
        type=verdict_out,
        metavar="PATH",
        help="write the verdict here as JSON (outcome, reason, from, to, figures per colour)",
    )
    c = sub.add_parser(
        "commit-rollback",
        parents=[stack],
        help="commit and push the pointer revert a watch wrote (CI, after a rollback)",
    )
    c.add_argument(
        "--verdict-file",
        type=verdict_in,
        required=True,
        metavar="PATH",
        help="the verdict file of the watch that rolled back",
    )
    c.add_argument(
        "--branch", help="push to this branch (default: the remote's default, else main)"
    )
    c.add_argument("--remote", default="origin", help="push to this remote (origin)")
    wr = sub.add_parser(
        "writer",
        parents=[writer.arguments()],
        help=writer.HELP,
        description=writer.DESCRIPTION,
    )
    wr.set_defaults(writer_cli=wr)  # its errors show its own usage
    return top


def project_dir(start: str) -> str | None:
    """The nearest directory from `start` upwards with a Pulumi.yaml, as pulumi finds it."""
    path = os.path.abspath(start)
    while True:
        if os.path.exists(os.path.join(path, "Pulumi.yaml")):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.command == "writer":
        return writer.run(args.writer_cli, args)
    # Imported here: `writer` runs on arm hosts, where there is no Pulumi to import.
    from cutover import commands
    from cutover.engine_events import NoSuchStack, PulumiError
    from cutover.operator import Operator
    from cutover.workspace import Workspace

    where = project_dir(os.getcwd())
    if where is None:
        cli.error(f"no Pulumi.yaml in {os.getcwd()} or above: run bluegreen inside the project")
    stack = args.stack or os.environ.get(STACK_ENV) or "live"
    if args.command == "commit-rollback":
        return exit_code(commands.commit_rollback(where, stack, args))
    if args.command == "queue" and (args.action == "list") == bool(args.receipt or args.all):
        cli.error(
            "queue: list takes no receipt; retry takes a receipt or --all; drop takes a receipt"
            f" (got: {args.action} {args.receipt or ''}{' --all' if args.all else ''})"
        )
    if args.command == "queue" and args.action == "drop" and (args.all or not args.receipt):
        cli.error("queue drop: name the receipt of one dead letter (drop has no --all)")
    given = (
        "argument --stack" if args.stack else f"${STACK_ENV}" if os.environ.get(STACK_ENV) else ""
    )
    named = f"{given}: " if given else ""
    ws = Workspace(where, echo=True, policy_pack="policy")

    def say(line: str) -> None:
        print(line, flush=True)

    op = Operator(ws, stack=stack, out=say)
    holds = args.command in ("flip", "watch", "shadow")
    if holds:
        from cutover import display  # rich, for the commands that hold

        op.display = display.for_hold(say)
    told = notify.Told(ws, stack)
    try:
        edge = op.edge  # read and validated before anything changes
        if holds:  # a bad webhook URL refuses them before anything changes; see notify.Told
            told.load()
    except NoSuchStack:
        cli.error(f'{named}no stack "{stack}" in this project; its stacks: {_stacks(ws)}')
    except config.ConfigError as err:
        cli.error(f"{named}the config of stack {stack} is not valid:\n{err}")
    except notify.BadUrl as err:
        cli.error(f"{named}{err}")
    op.notify = told
    op.keep_holding = bool(getattr(args, "keep_holding", False))
    try:
        return exit_code(commands.run(op, args, edge.hold))
    except PulumiError as err:
        print(f"bluegreen: {err}", file=sys.stderr)
        return EXIT_CODES[Outcome.FAILED]
    except KeyboardInterrupt:
        print("bluegreen: interrupted", file=sys.stderr)
        return EXIT_CODES[Outcome.INTERRUPTED]
    finally:
        told.close()


def _stacks(ws: Workspace) -> str:
    from cutover.engine_events import PulumiError

    try:
        return ", ".join(ws.stacks()) or "none yet"
    except PulumiError:
        return "unknown (pulumi stack ls failed)"


if __name__ == "__main__":
    sys.exit(main())
