"""The maintenance queue's replay: once the edge takes writes again, the kept intents are sent
through it to the active arm, in arrival order, by one replayer at a time per store.

Each intent is sent at least once: a replayer killed between a send and marking it delivered is
followed, once its claim on the store expires, by another that sends it again; the arm's
Idempotency-Key dedupe makes its effect once. The queue service (queue_service.py) runs a
`Replayer` beside its intake.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from agents.edge import intents
from bluegreen import probe
from bluegreen.probe import RECEIPT_HEADER, REPLAY_HEADER
from bluegreen.switch import STATUS_PATH

KEY_HEADER = "Idempotency-Key"
TRANSIENT = (423, 429, 502, 503, 504)
"""Answers that say "not now": the intent stays queued and the round stops, for the edge or the
arm to recover; any other failure will not get better by resending the same request."""
BACKOFF_FIRST, BACKOFF_MAX = 0.2, 30.0
REPLAY_TIMEOUT = 10.0
RETRY_HORIZON = 600.0
"""Seconds a write the client was told is queued keeps being retried through transient failures
before it is a dead letter (bluegreen:maintenanceQueueRetryMinutes)."""
CLAIM_SECONDS = 30.0
"""How long the replay claim lasts unrenewed: a killed replayer's intents wait this long."""

Log = Callable[[str], None]


def log_line(text: str) -> None:
    print(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}Z {text}", flush=True)


class Health:
    """What the health check reports besides the counts: the replay's last error, until a round
    that used the store succeeds again."""

    def __init__(self) -> None:
        self.problem: str | None = None
        self.replayer: threading.Thread | None = None

    def failing(self) -> str | None:
        started = self.replayer is not None and self.replayer.ident is not None
        if started and not self.replayer.is_alive():
            return "the replay thread has stopped: restart the queue service"
        return self.problem


class ProbeToken:
    """The edge's per-edge secret for bluegreen's own headers, read from a file and read again
    when the file changes (a rotation needs no restart). No file: requests go without it."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._seen: tuple | None = None
        self._value: str | None = None

    def value(self) -> str | None:
        if not self.path:
            return None
        try:
            st = os.stat(self.path)
            seen = (st.st_ino, st.st_mtime_ns, st.st_size)
            if seen != self._seen:
                with open(self.path) as f:
                    self._value = f.read().strip() or None
                self._seen = seen
        except OSError:
            self._seen = self._value = None
        return self._value


@dataclass
class ReplayRound:
    """What one pass over the queue did, and why it stopped early if it did."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    requeued: bool = False
    """The edge queued a replay again (202 with a receipt): maintenance is back."""
    unclaimed: bool = False
    """Another replayer holds the claim (or took it over): this one sends nothing."""
    give_up_in: float = math.inf
    """Seconds until the intent that failed reaches the retry horizon."""

    @property
    def stopped(self) -> bool:
        return self.retried > 0 or self.requeued


class Claim:
    """This replayer's hold on the store's replay claim (IntentStore.claim), renewed once half
    of it has run, so a send started under it ends before it expires."""

    def __init__(self, store: intents.IntentStore, ttl: float, holder: str | None = None) -> None:
        self.store, self.ttl = store, ttl
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.fence: int | None = None
        self._renewed = -math.inf

    def hold(self) -> bool:
        now = time.monotonic()
        if self.fence is not None and now - self._renewed < self.ttl / 2:
            return True
        self.fence = self.store.claim(self.holder, self.ttl, self.fence)
        self._renewed = now
        return self.fence is not None

    def lost(self) -> None:
        self.fence = None

    def release(self) -> None:
        if self.fence is not None:
            self.store.release(self.holder, self.fence)
            self.fence = None


def _probe_headers(token: ProbeToken | None, default: str | None) -> dict[str, str]:
    """The probe header: the token when a token file is given (none while it is missing: an
    edge that checks tokens would refuse any other value), else `default` as before tokens."""
    value = token.value() if token and token.path else default
    return {probe.PROBE_HEADER: value} if value else {}


def writes_open(edge_url: str, timeout: float = 2.0, token: ProbeToken | None = None) -> bool:
    """True only when the edge says it takes writes: anything else (no answer, not JSON, no
    field) counts as closed, so a broken status page never starts a replay into maintenance."""
    answer = probe.request(
        edge_url.rstrip("/") + STATUS_PATH,
        timeout=timeout,
        headers=_probe_headers(token, "queue"),
    )
    doc = answer.json()
    return answer.status == 200 and "maintenance" in doc and doc["maintenance"] is None


def send(
    edge_url: str,
    intent: intents.Intent,
    timeout: float = REPLAY_TIMEOUT,
    token: ProbeToken | None = None,
) -> probe.Answer:
    headers = {
        **intent.headers,
        KEY_HEADER: intent.key,
        REPLAY_HEADER: intent.receipt,
        **_probe_headers(token, None),
    }
    return probe.request(
        edge_url.rstrip("/") + intent.path,
        method=intent.method,
        timeout=timeout,
        headers=headers,
        body=intent.body,
    )


def replay_once(
    store: intents.IntentStore,
    edge_url: str,
    horizon: float = RETRY_HORIZON,
    limit: int = 100,
    log: Log = log_line,
    timeout: float = REPLAY_TIMEOUT,
    claim: Claim | None = None,
    token: ProbeToken | None = None,
) -> ReplayRound:
    """Send the oldest pending intents one at a time, in order, stopping at the first that
    cannot be delivered now: a later write must not overtake an earlier one it may depend on.
    With `claim`, only while this replayer holds the store's replay claim: a send is at least
    once (a replayer killed after a send and before marking it is followed by another that sends
    it again), and the arm's Idempotency-Key dedupe makes its effect once."""
    done = ReplayRound()
    if claim is not None and not claim.hold():
        done.unclaimed = True
        return done
    fence = claim.fence if claim else None
    for intent in store.pending(limit):
        # A new fence means the claim ran out meanwhile (another may have sent some of these):
        # the next round reads the queue again.
        if claim is not None and (not claim.hold() or claim.fence != fence):
            done.unclaimed = True
            return done
        answer = send(edge_url, intent, timeout, token)
        status = answer.status
        what = f"{intent.receipt} seq={intent.seq} {intent.method} {intent.path}"
        if status == 202 and RECEIPT_HEADER.lower() in answer.headers:
            log(f"requeued by the edge {what}: maintenance is back, replay paused")
            done.requeued = True
            return done
        if status is not None and 200 <= status < 300:
            if not store.delivered(intent.receipt, status, fence=fence):
                return _lost(done, claim, log, what)
            log(f"delivered {what} status={status}")
            done.delivered += 1
            continue
        error = answer.error or answer.body[:200].decode("utf-8", "replace")
        if status is None or status in TRANSIENT:
            now = time.time()
            since = intent.first_failed_at if intent.first_failed_at is not None else now
            dead = now - since >= horizon
            if dead:
                error = (
                    f"gave up after {now - since:.1f} s of transient failures "
                    f"({intent.attempts + 1} attempts; the horizon is {horizon:g} s): "
                    f"{status or error}"
                )
            if not store.failed(intent.receipt, status, error, dead=dead, now=now, fence=fence):
                return _lost(done, claim, log, what)
            if dead:
                log(f"dead {what}: {error}")
                done.dead += 1
            else:
                log(f"failed {what} status={status} ({error}); will retry")
                done.retried += 1
                done.give_up_in = horizon - (now - since)
            return done  # the next ones wait: order matters more than throughput
        if not store.failed(intent.receipt, status, error, dead=True, fence=fence):
            return _lost(done, claim, log, what)
        log(f"dead {what} status={status}: {error[:80]}")
        done.dead += 1
    return done


def _lost(done: ReplayRound, claim: Claim | None, log: Log, what: str) -> ReplayRound:
    log(f"replay claim taken over while sending {what}: the new holder sends it again")
    if claim is not None:
        claim.lost()
    done.unclaimed = True
    return done


class Replayer(threading.Thread):
    """Polls the edge; once writes have stayed open for `soak` seconds, replays the queue while
    it holds the store's replay claim. A store error does not end it: it is logged, shown by
    the health check, and the round is tried again with backoff."""

    def __init__(
        self,
        store: intents.IntentStore,
        edge_url: str,
        soak: float = 5.0,
        horizon: float = RETRY_HORIZON,
        poll: float = 0.5,
        log: Log = log_line,
        claim_s: float = CLAIM_SECONDS,
        token: ProbeToken | None = None,
        health: Health | None = None,
    ) -> None:
        super().__init__(name="replay", daemon=True)
        self.store, self.edge_url, self.soak = store, edge_url, soak
        self.horizon, self.poll, self.log = horizon, poll, log
        self.claim = Claim(store, claim_s)
        # A send ends before the claim it started under runs out (see Claim.hold).
        self.timeout = min(REPLAY_TIMEOUT, claim_s / 2)
        self.token = token
        self.health = health or Health()
        self.health.replayer = self
        self.stopping = threading.Event()
        self._open_since: float | None = None
        self._failures = 0
        self._used_store = False

    def run(self) -> None:
        errors = 0
        delay = self.poll
        try:
            while not self.stopping.wait(delay):
                try:
                    delay = self._round()
                except Exception as exc:
                    errors += 1
                    delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (errors - 1))
                    self.health.problem = f"replay failed: {type(exc).__name__}: {exc}"
                    self.log(f"{self.health.problem}; next try in {delay:.1f} s")
                    self.claim.lost()
                    continue
                if errors and self._used_store:
                    self.log(f"replay works again after {errors} failed round(s)")
                    errors, self.health.problem = 0, None
        finally:
            with contextlib.suppress(Exception):
                self.claim.release()

    def _round(self) -> float:
        """One look at the edge and, once writes have soaked open, one replay round: the delay
        before the next."""
        self._used_store = False
        if not writes_open(self.edge_url, token=self.token):
            if self._open_since is not None:
                self.log("writes closed at the edge: replay waits")
            self._open_since = None
            return self.poll
        now = time.monotonic()
        if self._open_since is None:
            self._open_since = now
            self.log(f"writes open at the edge: replay after {self.soak:g} s open")
        if now - self._open_since < self.soak:
            return self.poll
        done = replay_once(
            self.store,
            self.edge_url,
            self.horizon,
            log=self.log,
            timeout=self.timeout,
            claim=self.claim,
            token=self.token,
        )
        self._used_store = True
        if done.requeued:
            self._open_since = None
        elif done.retried:
            self._failures += 1
            backoff = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self._failures - 1))
            # The last try falls at the horizon, not up to a whole backoff past it.
            return max(0.0, min(backoff, done.give_up_in))
        else:
            self._failures = 0
            if done.delivered or done.dead:
                return 0  # more may wait: next round now, after checking the edge again
        return self.poll

    def stop(self) -> None:
        self.stopping.set()
