"""The maintenance queue: keeps keyed writes the edge cannot serve while read-only, and replays
them through the edge, in arrival order, when writes are open again: each sent at least once
(one replayer at a time per store, by a claim), applied once by the arm's Idempotency-Key dedupe.

    python -m agents.edge.queue_service --listen 127.0.0.1:18090 \\
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agents.edge import intents
from agents.edge.replay import (
    CLAIM_SECONDS,
    KEY_HEADER,
    REPLAY_TIMEOUT,
    RETRY_HORIZON,
    Health,
    ProbeToken,
    Replayer,
    log_line,
)
from bluegreen.probe import CLIENT_HEADER, RECEIPT_HEADER, RETRY_AFTER_HEADER
from bluegreen.switch import WRITE_METHODS

HEALTH_PATH = "/_bluegreen/queue/health"
KEY_MAX = 255
RETRY_AFTER_DEFAULT = 30


def valid_key(key: str | None) -> bool:
    """1-255 visible ASCII characters: what fits in a log line and a unique index unchanged."""
    return bool(key) and len(key) <= KEY_MAX and all("!" <= c <= "~" for c in key)


# -- intake


def make_handler(
    store: intents.IntentStore, max_body: int, health: Health | None = None
) -> type[BaseHTTPRequestHandler]:
    health = health or Health()

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

        def _unavailable(self, error: str, message: str, retry_after: int) -> None:
            # Never a 202: a write the queue cannot keep is refused, so the client retries.
            self._answer(
                503,
                {"error": error, "message": message, "retryAfter": retry_after},
                {"Retry-After": str(retry_after)},
            )

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
            # To this service every write comes from nginx: the edge names the client's address
            # in X-Bluegreen-Client, replacing whatever a client sent (QUEUE_REQUEST_HEADERS in
            # bluegreen/nginx_conf/queueing.py). Without it (a service reached directly), the
            # peer it is.
            peer = self.headers.get(CLIENT_HEADER) or self.client_address[0]
            client = intents.client_id(headers, peer)
            try:
                got = store.accept(
                    key, self.command, self.path, headers, body, time.time(), client=client
                )
            except intents.KeyReused as exc:
                return self._answer(422, {"error": "idempotency-key reused", "message": str(exc)})
            except intents.QueueFull as exc:
                log_line(f"refused {self.command} {self.path}: {exc}")
                return self._unavailable(exc.reason, f"Not queued: {exc}.", retry_after)
            except Exception as exc:  # the store is down: refused, never silently lost
                log_line(f"refused {self.command} {self.path}: store error: {exc}")
                return self._unavailable(
                    "store-unavailable", f"Not queued: the store failed ({exc}).", retry_after
                )
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
            problem = health.failing()
            try:
                counts = store.counts()
            except Exception as exc:
                problem, counts = problem or f"the store failed: {exc}", {}
            if problem:
                return self._answer(503, {"status": "failing", "error": problem, "counts": counts})
            self._answer(200, {"status": "ok", "counts": counts})

        def _refuse(self) -> None:
            self._answer(
                405, {"error": "method not allowed"}, {"Allow": "GET, " + ", ".join(WRITE_METHODS)}
            )

        do_HEAD = do_OPTIONS = do_TRACE = do_CONNECT = _refuse
        do_POST = do_PUT = do_PATCH = do_DELETE = _intake

        def log_message(self, *args) -> None:
            pass  # one line per state change is logged, not one per request

    return Handler


# -- the process


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m agents.edge.queue_service", description=__doc__.split("\n\n")[0]
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
    parser.add_argument(
        "--retry-horizon",
        type=float,
        default=RETRY_HORIZON,
        metavar="SECONDS",
        help="how long transient failures are retried before a write is a dead letter",
    )
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between status checks")
    limits = intents.Limits()
    parser.add_argument("--max-pending", type=int, default=limits.max_pending, metavar="N")
    parser.add_argument(
        "--max-pending-mb", type=int, default=limits.max_pending_bytes >> 20, metavar="MIB"
    )
    parser.add_argument(
        "--max-per-client",
        type=int,
        default=limits.max_per_client,
        metavar="N",
        help="pending writes one client may have",
    )
    parser.add_argument(
        "--min-free-mb",
        type=int,
        default=limits.min_free_bytes >> 20,
        metavar="MIB",
        help="SQLite: refuse writes once the disk under the store has less free",
    )
    parser.add_argument(
        "--claim-seconds",
        type=float,
        default=CLAIM_SECONDS,
        metavar="SECONDS",
        help="how long the replay claim lasts unrenewed (a killed replayer's is taken over then)",
    )
    parser.add_argument(
        "--probe-token-file",
        metavar="PATH",
        help="the edge's secret for X-Bluegreen-Probe, re-read when it changes; missing: none",
    )
    args = parser.parse_args(argv)
    for flag in ("max_pending", "max_pending_mb", "max_per_client"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    if args.min_free_mb < 0 or args.retry_horizon < 0 or args.claim_seconds <= 0:
        parser.error("--min-free-mb and --retry-horizon must be >= 0, --claim-seconds > 0")
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
    limits = intents.Limits(
        max_pending=args.max_pending,
        max_pending_bytes=args.max_pending_mb << 20,
        max_per_client=args.max_per_client,
        min_free_bytes=args.min_free_mb << 20,
    )
    try:
        store = intents.open_keyed(store_spec(args), args.key_file, limits)
    except (intents.StoreError, OSError) as exc:
        print(f"queue: {exc}", file=sys.stderr)
        return 2
    # The standard library's server: intake is a handful of lines behind nginx on loopback,
    # and the edge hosts then need no web framework installed next to nginx.
    health = Health()
    server = ThreadingHTTPServer(
        (args.host, args.port), make_handler(store, args.max_body_kb * 1024, health)
    )
    server.daemon_threads = False  # server_close() then waits for the request in flight
    replayer = Replayer(
        store,
        args.edge,
        args.soak,
        args.retry_horizon,
        args.poll,
        claim_s=args.claim_seconds,
        token=ProbeToken(args.probe_token_file),
        health=health,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    intake = threading.Thread(target=server.serve_forever, name="intake")
    replayer.start()
    intake.start()
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
