"""One background writer at a time, by lease: `bluegreen-writer` on an arm host (also `bluegreen
writer`, for operators).

The edge serves the lease, read-only, at `GET {edge}/_bluegreen/lease`:

    {"holder": "green", "fence": 7, "since": 1763900000.125, "handover": 3, "now": 1763900004.5}

The wrapper runs its command only while `holder` is its colour and the edge's `now` is at least
`since + handover`, so the old holder's writers (which poll as often and stop within the handover)
are gone first. It stops the command when the lease moves, freezes (holder null), changes fence,
or cannot be read, and passes the fence on (BLUEGREEN_FENCE) so that a store can refuse a writer
that was too slow to stop (app/consumer.py). Standard library only: arm hosts have no Pulumi.

Every event is one line on stdout, `writer <colour> <event> key=value ... at=<epoch> why="..."`;
`started` is stamped before the fork and `stopped`/`exited` after the wait, so that the interval
between them covers the whole life of the command.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from agents.arm import lease
from agents.arm.lease import LeaseReader, ServedLease, Unreadable
from bluegreen.config import COLORS
from bluegreen.durations import duration, interval

FENCE_ENV, COLOR_ENV, LEASE_URL_ENV = "BLUEGREEN_FENCE", "BLUEGREEN_COLOR", "BLUEGREEN_LEASE_URL"
MIN_GRACE = 0.1
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def grace_within(asked: float, handover: float, poll: float) -> float:
    """The stop's grace: the command must be gone within the handover, which the writer may only
    notice a poll late and the other colour's writer a poll early."""
    return max(MIN_GRACE, min(asked, handover - 2 * poll))


def _die_with_parent(parent: int) -> Callable[[], None]:
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not after

    def preexec() -> None:
        # A wrapper killed with SIGKILL cannot stop its command; the kernel then sends SIGTERM
        # so that the command does not go on writing without a lease.
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the wrapper died before prctl: no signal will come
            os._exit(1)

    return preexec


def fmt(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=\\') else text


class Writer:
    """Runs `command` while the lease lets `color` write; one line per event on `out`."""

    def __init__(
        self,
        color: str,
        reader: LeaseReader,
        command: Sequence[str],
        poll: float,
        grace: float,
        out: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        self.color, self.reader, self.command = color, reader, list(command)
        self.poll, self.asked_grace, self.out = poll, grace, out
        self.child: subprocess.Popen[bytes] | None = None
        self.fence: int | None = None
        self.grace = grace
        self.seen: object = None  # the last lease state logged, to log changes only
        self.signal: int | None = None
        self.backoff, self.restart_at, self.started_mono = BACKOFF_FIRST, 0.0, 0.0

    def log(
        self, event: str, why: str | None = None, at: float | None = None, **fields: object
    ) -> None:
        pairs = [f"{k}={fmt(v)}" for k, v in fields.items()]
        pairs.append(f"at={time.time() if at is None else at:.3f}")
        if why:
            pairs.append(f"why={json.dumps(why)}")
        self.out(" ".join([f"writer {self.color} {event}", *pairs]))

    def run(self) -> int:
        """Until SIGTERM (exit 0) or SIGINT (exit 130), which stop the command first."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        while self.signal is None:
            self.step()
            self._sleep(self.poll)
        name = signal.Signals(self.signal).name
        if self.child is not None:
            self.stop(f"the wrapper got {name}")
        self.log("done", why=f"the wrapper got {name}")
        return 130 if self.signal == signal.SIGINT else 0

    def step(self) -> None:
        # An exit is seen before the lease is read, so that whether to restart is judged by a
        # lease read after the exit: a command fenced out by the store exits only after the lease
        # moved, and a wrapper paused between a read and its decision must not restart it.
        exited = self.child is not None and self._exited()
        try:
            lease, why = self.reader.read(), None
        except Unreadable as err:
            lease, why = None, f"lease unreadable: {err}"
        self._note(lease, why)
        if exited:
            self._reap_exited(lease)
        if self.child is not None:
            reason = why or self._reason_to_stop(lease)
            if reason:
                self.stop(reason)
                self.backoff, self.restart_at = BACKOFF_FIRST, 0.0
        if self.child is None and lease is not None and lease.lets(self.color):
            if time.monotonic() >= self.restart_at and self.signal is None:
                self.start(lease)

    def _note(self, lease: ServedLease | None, why: str | None) -> None:
        state = why if lease is None else (lease.holder, lease.fence, lease.lets(self.color))
        if state != self.seen:
            self.seen = state
            if lease is None:
                self.log("lease", why=why)
            else:
                wait = max(0.0, lease.since + lease.handover - lease.now)
                holder = "null" if lease.holder is None else lease.holder
                self.log("lease", holder=holder, fence=lease.fence, handover_left=f"{wait:.3f}")
        if lease is None:
            return  # a stop keeps the grace of the last lease read
        # By the latest lease: after a move, the other colour starts after the new handover.
        grace = grace_within(self.asked_grace, lease.handover, self.poll)
        if grace != self.grace and grace < self.asked_grace:
            self.log(
                "grace",
                why="--grace shortened so that the command is gone within the handover",
                grace=f"{grace:.3f}",
                asked=self.asked_grace,
                handover=lease.handover,
                poll=self.poll,
            )
        self.grace = grace

    def _reason_to_stop(self, lease: ServedLease | None) -> str | None:
        if lease is None:
            return "lease unreadable"
        if lease.holder is None:
            return "writes frozen (holder null)"
        if lease.holder != self.color:
            return f"lease moved to {lease.holder}"
        if lease.fence != self.fence:
            return f"fence changed from {self.fence} to {lease.fence}"
        return None

    def start(self, lease: ServedLease) -> None:
        env = dict(os.environ)
        env.update(
            {FENCE_ENV: str(lease.fence), COLOR_ENV: self.color, LEASE_URL_ENV: self.reader.url}
        )
        # Stamped before the fork: the logged interval covers the whole life of the command.
        at = time.time()
        try:
            child = subprocess.Popen(
                self.command,
                env=env,
                start_new_session=True,  # its own group, so the stop reaches what it starts
                preexec_fn=_die_with_parent(os.getpid()),
            )
        except OSError as err:
            self.log("failed", fence=lease.fence, why=f"cannot run {self.command[0]}: {err}")
            self._back_off()
            return
        self.child, self.fence, self.started_mono = child, lease.fence, time.monotonic()
        self.log("started", pid=child.pid, fence=lease.fence, at=at)

    def stop(self, why: str) -> None:
        """SIGTERM to the command's group, SIGKILL after the grace; logged once it is reaped."""
        assert self.child is not None
        pid = self.child.pid
        if self._exited():
            # It was gone before the wrapper came to stop it (a store that fenced it out acts in
            # the same poll as the lease moves): say so, rather than claim a stop it never got.
            self._finish("exited", "exited by itself")
            return
        self._signal_group(signal.SIGTERM)
        self.log("stopping", why=why, pid=pid, fence=self.fence, grace=f"{self.grace:.3f}")
        deadline = time.monotonic() + self.grace
        while not self._exited() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._exited():
            why = f"{why}; still running after {self.grace:.3f}s"
            self.log("killing", why=why, pid=pid, fence=self.fence)
        self._finish("stopped", why)

    def _reap_exited(self, lease: ServedLease | None) -> None:
        holding = lease is not None and lease.lets(self.color) and lease.fence == self.fence
        if time.monotonic() - self.started_mono >= BACKOFF_MAX:
            self.backoff = BACKOFF_FIRST  # it ran a good while: this exit is not a crash loop
        wait = self._back_off() if holding else 0.0
        why = f"exited by itself; restart in {wait:.1f}s" if holding else "exited by itself"
        self._finish("exited", why)

    def _back_off(self) -> float:
        # A writer is long-running: even exit code 0 is restarted, after a doubling wait so that
        # a command that fails at once does not spin.
        wait, self.backoff = self.backoff, min(self.backoff * 2, BACKOFF_MAX)
        self.restart_at = time.monotonic() + wait
        return wait

    def _finish(self, event: str, why: str) -> None:
        assert self.child is not None
        # Whatever the command left in its group goes with it (the leader, a zombie until the
        # wait below, keeps the group's id from being reused).
        self._signal_group(signal.SIGKILL)
        code = self.child.wait()
        at = time.time()
        pid, self.child = self.child.pid, None
        self.log(event, why=why, pid=pid, fence=self.fence, code=code, at=at)

    def _exited(self) -> bool:
        """The command has exited (left unreaped, so that its group can still be signalled)."""
        assert self.child is not None
        try:
            seen = os.waitid(os.P_PID, self.child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return seen is not None

    def _signal_group(self, sig: int) -> None:
        assert self.child is not None
        try:
            os.killpg(self.child.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signal = signum

    def _sleep(self, seconds: float) -> None:
        # In slices, so that a SIGTERM is acted on within 50 ms rather than a whole poll.
        end = time.monotonic() + seconds
        while self.signal is None and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))


# -- the command line: `bluegreen-writer` on the hosts, `bluegreen writer` for operators

HELP = "run a background writer only while the edge's lease lets this colour write"
DESCRIPTION = (
    "Runs COMMAND while the edge's lease names COLOR and its handover has passed, with "
    "BLUEGREEN_FENCE, BLUEGREEN_COLOR and BLUEGREEN_LEASE_URL in its environment; stops it "
    "(SIGTERM, then SIGKILL after the grace) when the lease moves, freezes, changes fence or "
    "cannot be read. A command that exits by itself while the lease holds, even with code 0, is "
    "restarted after a wait of 1s doubling to 30s. SIGTERM stops the command and exits 0; SIGINT "
    "exits 130."
)


def _edge(text: str) -> str:
    try:
        return lease.edge_url(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def arguments() -> argparse.ArgumentParser:
    """The writer's arguments, for its own command and the `bluegreen writer` subcommand."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--color", required=True, choices=COLORS, help="this arm's colour")
    p.add_argument(
        "--edge",
        type=_edge,
        help=f"the edge's URL, serving {lease.LEASE_PATH} (default: ${lease.EDGE_ENV})",
    )
    p.add_argument("--poll", type=interval, default=0.2, help="read the lease this often (0.2s)")
    p.add_argument(
        "--grace",
        type=duration,
        default=10.0,
        help="from SIGTERM to SIGKILL (10s; shortened to end within the lease's handover)",
    )
    p.add_argument(
        "argv", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG ...]", help="the writer to run"
    )
    return p


def run(cli: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Check what `arguments()` parsed (errors through `cli`, with its usage), then run."""
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    url = args.edge
    if url is None:
        given = os.environ.get(lease.EDGE_ENV)
        if not given:
            cli.error(f"the edge is unknown: give --edge URL or set ${lease.EDGE_ENV}")
        try:
            url = lease.edge_url(given)
        except ValueError as err:
            cli.error(f"${lease.EDGE_ENV} {err}")
    if not command:
        cli.error("no command to run: give it after --, e.g. -- ./run-consumer --db q.db")
    if shutil.which(command[0]) is None:
        cli.error(f"cannot run {command[0]!r}: not an executable file or on $PATH")
    return Writer(args.color, LeaseReader(url), command, args.poll, args.grace).run()


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        prog="bluegreen-writer", description=DESCRIPTION, parents=[arguments()]
    )
    return run(cli, cli.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
