"""The maintenance queue: keeps keyed writes the edge cannot serve while read-only, and replays
them through the edge, in arrival order, once each, when writes are open again.

    python -m bluegreen.queue_service --listen 127.0.0.1:18090 \\
        --store sqlite:///var/lib/bluegreen/queue/intents.sqlite3 \\
        --key-file /var/lib/bluegreen/queue/key --edge http://127.0.0.1:18080

nginx proxies a write that carries an `Idempotency-Key` here during maintenance; the answer is
`202 Accepted` with a receipt. Over HTTP the service only takes writes in and reports its
health: retrying or dropping dead letters is the operator's, on the store directly.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bluegreen import intents, probe
from bluegreen.switch import STATUS_PATH, WRITE_METHODS

HEALTH_PATH = "/_bluegreen/queue/health"
RECEIPT_HEADER = "X-Bluegreen-Receipt"
REPLAY_HEADER = "X-Bluegreen-Replay"
RETRY_AFTER_HEADER = "X-Bluegreen-Retry-After"
KEY_HEADER = "Idempotency-Key"
KEY_MAX = 255
RETRY_AFTER_DEFAULT = 30
TRANSIENT = (423, 429, 502, 503, 504)
"""Answers that say "not now": the intent stays queued and the round stops, for the edge or the
arm to recover; any other failure will not get better by resending the same request."""
BACKOFF_FIRST, BACKOFF_MAX = 0.2, 5.0
REPLAY_TIMEOUT = 10.0

Log = Callable[[str], None]


def log_line(text: str) -> None:
    print(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}Z {text}", flush=True)


def valid_key(key: str | None) -> bool:
    """1-255 visible ASCII characters: what fits in a log line and a unique index unchanged."""
    return bool(key) and len(key) <= KEY_MAX and all("!" <= c <= "~" for c in key)


# -- intake


def make_handler(store: intents.IntentStore, max_body: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so stopping never waits on an idle kept-alive
        # connection from nginx (which speaks HTTP/1.0 to upstreams unless told otherwise).
        protocol_version = "HTTP/1.0"
        server_version = "bluegreen-queue"

        def _answer(self, status: int, doc: dict, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(doc, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _intake(self) -> None:
            if self.path.startswith("/_bluegreen/"):
                return self._answer(404, {"error": "not found"})
            key = self.headers.get(KEY_HEADER)
            if not valid_key(key):
                return self._answer(
                    400,
                    {
                        "error": "idempotency-key",
                        "message": f"A queued write needs an {KEY_HEADER} header of 1 to "
                        f"{KEY_MAX} visible ASCII characters (no spaces).",
                    },
                )
            if self.headers.get("Transfer-Encoding"):
                return self._answer(411, {"error": "length required"})
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                return self._answer(400, {"error": "bad Content-Length"})
            if length > max_body or length < 0:
                self.close_connection = True  # the body stays unread
                return self._answer(
                    413,
                    {
                        "error": "too large",
                        "message": f"A queued write's body is at most {max_body // 1024} KiB; "
                        f"this one is {length} bytes.",
                        "maxBytes": max_body,
                    },
                )
            body = self.rfile.read(length)
            try:
                retry_after = max(1, int(self.headers.get(RETRY_AFTER_HEADER, "")))
            except ValueError:
                retry_after = RETRY_AFTER_DEFAULT
            headers = dict(self.headers.items())
            try:
                got = store.accept(key, self.command, self.path, headers, body, time.time())
            except intents.KeyReused as exc:
                return self._answer(422, {"error": "idempotency-key reused", "message": str(exc)})
            extra = {RECEIPT_HEADER: got.receipt}
            if got.duplicate:
                extra["Idempotent-Replayed"] = "true"
            else:
                log_line(f"queued {got.receipt} seq={got.seq} {self.command} {self.path}")
            self._answer(
                202,
                {
                    "status": "queued",
                    "receipt": got.receipt,
                    "idempotencyKey": key,
                    "retryAfter": retry_after,
                },
                extra,
            )

        def do_GET(self) -> None:
            if self.path != HEALTH_PATH:
                return self._answer(404, {"error": "not found"})
            self._answer(200, {"status": "ok", "counts": store.counts()})

        def _refuse(self) -> None:
            self._answer(
                405, {"error": "method not allowed"}, {"Allow": "GET, " + ", ".join(WRITE_METHODS)}
            )

        do_HEAD = do_OPTIONS = do_TRACE = do_CONNECT = _refuse
        do_POST = do_PUT = do_PATCH = do_DELETE = _intake

        def log_message(self, *args) -> None:
            pass  # one line per state change is logged, not one per request

    return Handler


# -- replay


@dataclass
class ReplayRound:
    """What one pass over the queue did, and why it stopped early if it did."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    requeued: bool = False
    """The edge queued a replay again (202 with a receipt): maintenance is back."""

    @property
    def stopped(self) -> bool:
        return self.retried > 0 or self.requeued


def writes_open(edge_url: str, timeout: float = 2.0) -> bool:
    """True only when the edge says it takes writes: anything else (no answer, not JSON, no
    field) counts as closed, so a broken status page never starts a replay into maintenance."""
    answer = probe.request(
        edge_url.rstrip("/") + STATUS_PATH,
        timeout=timeout,
        headers={probe.PROBE_HEADER: "queue"},
    )
    doc = answer.json()
    return answer.status == 200 and "maintenance" in doc and doc["maintenance"] is None


def send(edge_url: str, intent: intents.Intent, timeout: float = REPLAY_TIMEOUT) -> probe.Answer:
    headers = {**intent.headers, KEY_HEADER: intent.key, REPLAY_HEADER: intent.receipt}
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
    attempts: int = 5,
    limit: int = 100,
    log: Log = log_line,
    timeout: float = REPLAY_TIMEOUT,
) -> ReplayRound:
    """Send the oldest pending intents one at a time, in order, stopping at the first that
    cannot be delivered now: a later write must not overtake an earlier one it may depend on."""
    done = ReplayRound()
    for intent in store.pending(limit):
        answer = send(edge_url, intent, timeout)
        status = answer.status
        what = f"{intent.receipt} seq={intent.seq} {intent.method} {intent.path}"
        if status == 202 and RECEIPT_HEADER.lower() in answer.headers:
            log(f"requeued by the edge {what}: maintenance is back, replay paused")
            done.requeued = True
            return done
        if status is not None and 200 <= status < 300:
            store.delivered(intent.receipt, status)
            log(f"delivered {what} status={status}")
            done.delivered += 1
            continue
        error = answer.error or answer.body[:200].decode("utf-8", "replace")
        if status is None or status in TRANSIENT:
            dead = intent.attempts + 1 >= attempts
            store.failed(intent.receipt, status, error, dead=dead)
            if dead:
                log(f"dead {what} after {intent.attempts + 1} attempts: {status or error}")
                done.dead += 1
            else:
                log(f"failed {what} status={status} ({error}); will retry")
                done.retried += 1
            return done  # the next ones wait: order matters more than throughput
        store.failed(intent.receipt, status, error, dead=True)
        log(f"dead {what} status={status}: {error[:80]}")
        done.dead += 1
    return done


class Replayer(threading.Thread):
    """Polls the edge; once writes have stayed open for `soak` seconds, replays the queue."""

    def __init__(
        self,
        store: intents.IntentStore,
        edge_url: str,
        soak: float = 5.0,
        attempts: int = 5,
        poll: float = 0.5,
        log: Log = log_line,
    ) -> None:
        super().__init__(name="replay", daemon=True)
        self.store, self.edge_url, self.soak = store, edge_url, soak
        self.attempts, self.poll, self.log = attempts, poll, log
        self.stopping = threading.Event()

    def run(self) -> None:
        open_since: float | None = None
        failures = 0
        delay = self.poll
        while not self.stopping.wait(delay):
            delay = self.poll
            if not writes_open(self.edge_url):
                if open_since is not None:
                    self.log("writes closed at the edge: replay waits")
                open_since = None
                continue
            now = time.monotonic()
            if open_since is None:
                open_since = now
                self.log(f"writes open at the edge: replay after {self.soak:g} s open")
            if now - open_since < self.soak:
                continue
            done = replay_once(self.store, self.edge_url, self.attempts, log=self.log)
            if done.requeued:
                open_since = None
            elif done.retried:
                failures += 1
                delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1))
            else:
                failures = 0
                if done.delivered or done.dead:
                    delay = 0  # more may wait: next round now, after checking the edge again

    def stop(self) -> None:
        self.stopping.set()


# -- the process


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bluegreen.queue_service", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--listen", required=True, metavar="HOST:PORT", help="a loopback address")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", metavar="SPEC", help="sqlite:///abs/path or postgresql://...")
    where.add_argument(
        "--store-file",
        metavar="PATH",
        help="an owner-only file holding the spec: a DSN's password stays out of argv",
    )
    parser.add_argument("--key-file", required=True, metavar="PATH")
    parser.add_argument("--edge", required=True, metavar="URL", help="e.g. http://127.0.0.1:18080")
    parser.add_argument("--max-body-kb", type=int, default=64)
    parser.add_argument("--soak", type=float, default=5.0, help="seconds writes stay open first")
    parser.add_argument("--attempts", type=int, default=5, help="transient failures before dead")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between status checks")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    host = host.strip("[]")
    # No authentication on intake: only nginx on this host may reach it.
    if host not in ("127.0.0.1", "::1", "localhost") or not port.isdigit():
        parser.error(
            f"--listen must be a loopback HOST:PORT such as 127.0.0.1:18090, got {args.listen!r}"
        )
    args.host, args.port = host, int(port)
    return args


def store_spec(args: argparse.Namespace) -> str:
    if args.store:
        return args.store
    intents.owner_only(args.store_file, "store file")
    with open(args.store_file) as f:
        return f.read().strip()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        store = intents.open_store(store_spec(args), intents.load_key(args.key_file))
    except (intents.StoreError, OSError) as exc:
        print(f"queue: {exc}", file=sys.stderr)
        return 2
    # The standard library's server: intake is a handful of lines behind nginx on loopback,
    # and the edge hosts then need no web framework installed next to nginx.
    server = ThreadingHTTPServer(
        (args.host, args.port), make_handler(store, args.max_body_kb * 1024)
    )
    server.daemon_threads = False  # server_close() then waits for the request in flight
    replayer = Replayer(store, args.edge, args.soak, args.attempts, args.poll)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    intake = threading.Thread(target=server.serve_forever, name="intake")
    intake.start()
    replayer.start()
    log_line(f"listening on {args.listen}, replaying to {args.edge}; {store.counts()}")
    while not stop.wait(1.0):
        pass
    server.shutdown()  # no new requests
    server.server_close()
    intake.join()
    replayer.stop()
    replayer.join(REPLAY_TIMEOUT + 5)
    store.close()
    log_line("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
