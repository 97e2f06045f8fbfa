"""What each subcommand of `bluegreen` runs, once cutover/cli.py has parsed and checked its
arguments: each returns a `Report` (cutover/results.py), which the command turns into its exit
code (cutover/cli.py `EXIT_CODES`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import TYPE_CHECKING

from bluegreen import config
from cutover import ci, flip_log, watching
from cutover import commit_rollback as reverting
from cutover.flip import flip
from cutover.results import Outcome, Report
from cutover.rolling_back import rollback
from cutover.shadow import shadow
from cutover.status import schema_view, status

if TYPE_CHECKING:
    from cutover.operator import Operator


def run(op: Operator, args: argparse.Namespace, hold: config.Hold) -> Report:
    """The subcommand; the stop rules are the edge stack's `hold`, with any flags over it."""
    if args.command == "rollback":
        return rollback(op)
    if args.command == "status":
        return status_json(op) if args.json else status(op)
    if args.command == "queue":
        from cutover import queue  # the intent store's libraries, only where it is read

        return queue.run(op.queue_where(), args.action, args.receipt, args.all, op.out)
    overrides = {
        "error_tolerance": args.error_tolerance,
        "latency_tolerance": args.latency_tolerance,
    }
    rules = dataclasses.replace(hold, **{k: v for k, v in overrides.items() if v is not None})
    if args.command == "watch":
        return watch_command(op, args, rules)
    if args.command == "shadow":
        return shadow(op, args.hold, args.interval, rules)
    return flip(
        op,
        args.color,
        args.canary,
        args.hold,
        args.interval,
        args.freeze_writes,
        rules,
        args.shadow,
    )


def status_json(op: Operator) -> Report:
    """`status --json`: what the edge serves and the arms' versions (with a data stack, its
    `schema`: cutover/status.py `schema_summary`), on stdout alone."""
    arms = op.arms()
    record = ci.snapshot(
        op.stack, op.live(), {c: (op.edge.arm_stacks[c], arms[c]) for c in config.COLORS}
    )
    schema = schema_view(op, op.live(), arms)  # with a data stack: its revisions, one more read
    if schema is not None:
        record["schema"] = schema
    print(json.dumps(record, indent=2, sort_keys=True), flush=True)
    return Report(Outcome.DONE)


def watch_command(op: Operator, args: argparse.Namespace, rules: config.Hold) -> Report:
    """`watch`, skipped when the traffic did not move since --if-moved-since; the verdict to
    --verdict-file."""
    live = op.live()
    watched = live.active_color
    if args.if_moved_since is not None and not ci.moved(args.if_moved_since.served, live):
        op.out(
            f"the traffic did not move since {args.if_moved_since.path} "
            f"({watched or 'no colour'}, weights {json.dumps(live.weights)}): nothing to watch"
        )
        if args.verdict_file:
            record = ci.verdict_record(op.stack, watched, "unmoved", None, None, None, False)
            ci.write_verdict(args.verdict_file, record)
        return Report(Outcome.UNCHANGED)
    report = watching.watch(op, args.hold, args.interval, rules, live=live)
    verdict = report.verdict
    if args.verdict_file and verdict is not None:
        record = ci.verdict_record(
            op.stack,
            watched,
            verdict.outcome,
            verdict.reason,
            flip_log.seen(verdict.stats),
            verdict.seconds,
            report.outcome is Outcome.ROLLED_BACK,
        )
        ci.write_verdict(args.verdict_file, record)
        op.out(f"verdict {verdict.outcome} written to {args.verdict_file}")
    return report


def commit_rollback(where: str, stack: str, args: argparse.Namespace) -> Report:
    """`commit-rollback` (cutover/commit_rollback.py), its refusal and git's failure said on
    stderr."""

    def err(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        return reverting.commit_rollback(
            where,
            stack,
            args.verdict_file,
            branch=args.branch,
            remote=args.remote,
            out=lambda line: print(line, flush=True),
            err=err,
        )
    except reverting.Refused as refusal:
        err(f"bluegreen commit-rollback: refused, nothing was committed: {refusal}")
        return Report(Outcome.REFUSED, str(refusal))
    except reverting.GitError as failure:
        err(f"bluegreen commit-rollback: {failure}")
        return Report(Outcome.FAILED, str(failure))
