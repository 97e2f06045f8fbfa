"""The reference service each arm runs on the local platform.

`GET /` answers with the arm's colour and version (under /assets/ with `Cache-Control: public,
max-age=300`, which an edge cache may keep), `GET <health path>` with JSON readiness, and
POST/PUT/PATCH/DELETE are accepted so that maintenance mode has writes to block; a write with an
`Idempotency-Key` seen before is answered as the first time and not applied again, and
`GET /_arm/writes` lists the writes received, in order (the queue's tests read it). What it
remembers is bounded (app/idempotency.py): keys for a day, at most --max-keys of them and
--max-keys-per-client of one client's (a new key finding no place is refused before it is
applied: 503, or 429 when its client holds its whole share), the journal's last
--journal-max writes, bodies up to --max-body-kb (413 past it). Every response
carries `X-Bluegreen-Color` and `X-Bluegreen-Version`, which is how the edge, the probes and the
access log know which arm served a request.

`GET /metrics` is the Prometheus exposition (`prometheus_client`): every request other than the
health path and /metrics itself is counted by method and status code and timed in a histogram,
labelled with the arm's colour and version (the names are pinned in bluegreen/arm_metrics.py).
Requests marked `X-Bluegreen-Probe` (bluegreen's own) are not counted.

An arm trusts the `X-Bluegreen-*` request headers it gets (`X-Bluegreen-Probe`,
`X-Bluegreen-Replay`) because only the edge and operators can reach it: the edge sets every one
of them itself, to what it verified (a probe's token) or to nothing, whatever a client sent
(bluegreen/nginx_text/proxy.conf), and `/_arm/` is not served through it. So an arm must listen
on loopback (the local platform) or a private network that only the edge and operators reach
(the NixOS arm module opens its port in the host's firewall: that network must not be the
internet); a client that reaches an arm directly can mark its own requests as probes and read
the journal.

The `--ready-status`, `--delay-ms` and `--error-rate` flags make an arm unhealthy, slow or
erroring on purpose (a delay in ms added to every request, a share of requests answered 500 at
random); the tests, the benches and the demo use them to show the judge refusing a flip.
SIGUSR1 makes a running arm answer every request but its health path with 500, as a release
that passed its checks and then fails under real traffic; SIGHUP makes its delay --slow-factor
times longer (1.2 by default: a release that slows down under real traffic); SIGUSR2 makes it
well again.

With `--dsn-file PATH` (a file holding a libpq DSN, readable by its owner only: a DSN is never
on the command line) and `--items-shape v1|v2`, the arm serves a table in PostgreSQL (app/items.py,
its revisions in app/migrations): `GET /items` lists the first 1,000 rows by id, `GET /items/<id>`
one row, and `POST /items` with a JSON body inserts one and answers 201 with it. Shape v1 (the
release that needs revision 0001_items) reads and writes `{"id", "title"}`, shape v2
(0002_items_name and later) `{"id", "name"}`. A POST with an Idempotency-Key seen before is
answered as the first time and inserts nothing. When the database fails, the request is answered
503 with `Retry-After: 1` and nothing is kept of it: a write is applied or refused, never
dropped. Without --dsn-file, /items is a path like any other.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# app/, beside this file:
from idempotency import KEY_MAX, ClientFull, Full, Journal, Replays, client_of, valid_key
from metrics import CONTENT_TYPE_LATEST, Metrics

JOURNAL_PATH = "/_arm/writes"
JOURNAL_DROPPED = "X-Bluegreen-Journal-Dropped"
"""Beside the journal: how many older writes it no longer lists (it keeps --journal-max)."""


FAILING = {"on": False, "slow": False}
"""Set by SIGUSR1, cleared by SIGUSR2: answer 500 to everything but the health path. `slow`, set
by SIGHUP and cleared by SIGUSR2: --delay-ms times --slow-factor."""


def make_handler(args: argparse.Namespace, items=None) -> type[BaseHTTPRequestHandler]:
    """The request handler; `items`, an app/items.py Items, serves /items from the database."""
    identity = {"color": args.color, "version": args.version}
    metrics = Metrics(args.color, args.version)
    replays = Replays(args.max_keys, args.key_retention_hours * 3600, args.max_keys_per_client)
    writes = Journal(args.journal_max)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "bluegreen-app"
        # Headers and body leave in two writes; with Nagle on, a kept-alive client waits for the
        # delayed ACK (~40 ms) between them on every request.
        disable_nagle_algorithm = True

        def log_message(self, fmt: str, *values: object) -> None:  # quiet: nginx logs requests
            pass

        def _send(
            self,
            status: int,
            payload: dict | list,
            counted: bool = True,
            cache_s: int = 0,
            headers: dict | None = None,
        ) -> None:
            body = (json.dumps(payload) + "\n").encode()
            self._answer(status, body, "application/json", cache_s, headers)
            # bluegreen's own probes (the switch's confirmation, the gate's smoke sample) are not
            # users' traffic: the hold after a flip must never count them as such. Through the
            # edge the header is only there when the edge verified the probe's token.
            if counted and not self.headers.get("X-Bluegreen-Probe"):
                metrics.observe(self.command, status, time.perf_counter() - self.started)

        def _answer(
            self,
            status: int,
            body: bytes,
            content_type: str,
            cache_s: int = 0,
            headers: dict | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if cache_s:
                self.send_header("Cache-Control", f"public, max-age={cache_s}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Bluegreen-Color", args.color)
            self.send_header("X-Bluegreen-Version", args.version)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _delay_and_fail(self) -> bool:
            if args.delay_ms:
                factor = args.slow_factor if FAILING["slow"] else 1.0
                time.sleep(args.delay_ms * factor / 1000)
            if FAILING["on"] or (args.error_rate and random.random() < args.error_rate):
                self._send(500, {"error": "injected failure", **identity})
                return True
            return False

        def do_GET(self) -> None:
            self.started = time.perf_counter()
            # A body sent with a GET is read and ignored: left unread on a kept-alive connection
            # (the edge keeps them), it would be taken for the start of the next request.
            if self._body() is None:
                return
            path = self.path.split("?", 1)[0]
            if path == args.health_path:
                ready = args.ready_status == 200
                self._send(
                    args.ready_status,
                    {"status": "ready" if ready else "unready", **identity},
                    counted=False,
                )
                return
            if path == "/metrics":
                self._answer(200, metrics.exposition(), CONTENT_TYPE_LATEST)
                return
            if path == JOURNAL_PATH:  # the writes received, in order, duplicates marked
                entries, dropped = writes.read()
                body = json.dumps(entries).encode()
                self._answer(200, body, "application/json", headers={JOURNAL_DROPPED: str(dropped)})
                return
            if self._delay_and_fail():
                return
            if items is not None and (path == "/items" or path.startswith("/items/")):
                self._reply(self._read_items(path))
                return
            # /assets/ is what an edge cache may keep: the same for everyone, for 5 minutes.
            cache_s = 300 if path.startswith("/assets/") else 0
            hello = {"message": f"hello from {args.color}", "path": path, **identity}
            self._send(200, hello, cache_s=cache_s)

        do_HEAD = do_GET

        def _reply(self, answer: tuple) -> None:
            """Send (status, payload) or (status, payload, headers)."""
            status, payload, *headers = answer
            self._send(status, payload, headers=headers[0] if headers else None)

        def _read_items(self, path: str) -> tuple:
            """(status, payload[, headers]) of a GET under /items."""
            try:
                if path == "/items":
                    return 200, items.list()
                item_id = path.removeprefix("/items/")
                row = items.get(int(item_id)) if item_id.isdigit() else None
            except items.Error as e:
                return self._unavailable(e)
            return (200, row) if row else (404, {"error": f"no item {item_id}"})

        def _write_items(self, path: str, body: bytes) -> tuple:
            """(status, payload[, headers]) of a write under /items: POST /items inserts."""
            if self.command != "POST" or path != "/items":
                allow = "GET, HEAD, POST" if path == "/items" else "GET, HEAD"
                return 405, {"error": f"{self.command} {path}: not allowed"}, {"Allow": allow}
            try:
                value = json.loads(body or b"null").get(items.column)
            except (ValueError, AttributeError):
                value = None
            if not isinstance(value, str) or not value:
                return 400, {"error": f'send a JSON object with a non-empty "{items.column}"'}
            try:
                return 201, items.add(value)
            except items.Error as e:
                return self._unavailable(e)

        def _unavailable(self, error: Exception) -> tuple:
            """A database error: 503, to be retried (a write is not kept: the client retries)."""
            reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200]}"
            print(f"{self.command} {self.path}: database error: {reason}", flush=True)
            return 503, {"error": "database unavailable", "reason": reason}, {"Retry-After": "1"}

        def _body(self) -> bytes | None:
            """The request's body, read whole; None once a body this arm does not take was
            refused unread (the connection closed): one not sized by a Content-Length of digits
            (a negative one would read to the end of the stream), or over --max-body-kb."""
            raw = self.headers.get("Content-Length") or "0"
            refused = None
            if self.headers.get("Transfer-Encoding"):
                refused = 411, {"error": "send the body with a Content-Length"}
            elif not (raw.isascii() and raw.isdigit()):
                refused = 400, {"error": f"Content-Length {raw[:40]!r} is not a size"}
            elif int(raw) > args.max_body_kb * 1024:
                limit = f"{args.max_body_kb} KiB"
                refused = 413, {"error": f"a body of {int(raw)} bytes is over {limit}"}
            if refused is None:
                return self.rfile.read(int(raw)) if int(raw) else b""
            self.close_connection = True
            self._send(*refused)
            return None

        def _write(self) -> None:
            self.started = time.perf_counter()
            body = self._body()
            if body is None or self._delay_and_fail():
                return
            key = self.headers.get("Idempotency-Key")
            if key is not None and not valid_key(key):
                self._send(400, {"error": f"Idempotency-Key: 1 to {KEY_MAX} visible ASCII"})
                return
            path = self.path.split("?", 1)[0]
            table = items is not None and (path == "/items" or path.startswith("/items/"))
            if key is None:
                self._journal(body, duplicate=False)
                self._reply(self._apply(path, body, table))
                return
            # A key is its client's own (as the edge's queue scopes it): another client's same
            # key is another write, not a replay of this one.
            scoped = (client_of(self.headers, self.client_address[0]), key)
            try:
                with replays.hold(scoped) as slot:
                    self._journal(body, duplicate=slot.first is not None)
                    answer = slot.first or self._apply(path, body, table)
                    if slot.first is None and answer[0] < 300:  # kept: it took effect
                        slot.keep(answer)
            except Full as e:
                # Refused before it is applied: a key that cannot be remembered must not be
                # applied, or its replay would apply it again.
                print(f"{self.command} {self.path}: refused, {e}", flush=True)
                status = 429 if isinstance(e, ClientFull) else 503
                answer = status, {"error": f"too many idempotency keys: {e}"}, {"Retry-After": "60"}
            # A key seen before is answered as the first time and applied once (RFC draft
            # "The Idempotency-Key HTTP Header Field"): a replayed intent never applies twice.
            self._reply(answer)

        def _journal(self, body: bytes, duplicate: bool) -> None:
            writes.add(
                {
                    "method": self.command,
                    "path": self.path,
                    "key": self.headers.get("Idempotency-Key"),
                    "bytes": len(body),
                    "replay": self.headers.get("X-Bluegreen-Replay"),
                    "duplicate": duplicate,
                }
            )

        def _apply(self, path: str, body: bytes, table: bool) -> tuple:
            if table:
                return self._write_items(path, body)
            return 200, {"accepted": self.command, "path": self.path, **identity}

        do_POST = do_PUT = do_PATCH = do_DELETE = _write

    return Handler


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--color", required=True, choices=["blue", "green"])
    p.add_argument("--version", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--health-path", default="/healthz/ready")
    p.add_argument("--ready-status", type=int, default=200)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--slow-factor", type=float, default=1.2)
    p.add_argument("--dsn-file", help="a file holding the DSN of the database serving /items")
    p.add_argument("--items-shape", choices=["v1", "v2"], help="v1: title; v2: name")
    p.add_argument(
        "--max-body-kb", type=int, default=1024, help="the largest write body taken (1024 KiB)"
    )
    p.add_argument(
        "--max-keys", type=int, default=100_000, help="Idempotency-Keys remembered (100000)"
    )
    p.add_argument(
        "--max-keys-per-client", type=int, default=10_000, help="of which one client's (10000)"
    )
    p.add_argument(
        "--key-retention-hours", type=float, default=24.0, help="how long each is (24 hours)"
    )
    p.add_argument("--journal-max", type=int, default=50_000, help="writes listed (50000)")
    args = p.parse_args(argv)
    bounds = (
        "max_body_kb",
        "max_keys",
        "max_keys_per_client",
        "key_retention_hours",
        "journal_max",
    )
    for name in bounds:
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be above 0, got {getattr(args, name)}")
    items = None
    if (args.dsn_file is None) != (args.items_shape is None):
        p.error("--dsn-file and --items-shape go together")
    if args.dsn_file:
        from items import Items  # app/items.py, beside this file

        try:
            with open(args.dsn_file) as f:
                dsn = f.read().strip()
        except OSError as e:
            p.error(f"--dsn-file: {e}")
        if not dsn:
            p.error(f"--dsn-file: {args.dsn_file} holds no DSN")
        items = Items(dsn, args.items_shape)

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args, items))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGUSR1, lambda *_: FAILING.update(on=True))
    signal.signal(signal.SIGHUP, lambda *_: FAILING.update(slow=True))
    signal.signal(signal.SIGUSR2, lambda *_: FAILING.update(on=False, slow=False))
    print(f"{args.color} {args.version} listening on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if items is not None:
            items.close()


if __name__ == "__main__":
    main()
