"""The reference service each arm runs on the local platform.

`GET /` answers with the arm's colour and version, `GET <health path>` with JSON readiness, and
POST/PUT/PATCH/DELETE are accepted so that maintenance mode has writes to block. Every response
carries `X-Bluegreen-Color` and `X-Bluegreen-Version`, which is how the edge, the probes and the
access log know which arm served a request.

The `--ready-status`, `--delay-ms` and `--error-rate` flags make an arm unhealthy, slow or
erroring on purpose; the tests and the demo use them to show the policy pack refusing a flip.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(args: argparse.Namespace) -> type[BaseHTTPRequestHandler]:
    identity = {"color": args.color, "version": args.version}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "bluegreen-app"
        # Headers and body leave in two writes; with Nagle on, a kept-alive client waits for the
        # delayed ACK (~40 ms) between them on every request.
        disable_nagle_algorithm = True

        def log_message(self, fmt: str, *values: object) -> None:  # quiet: nginx logs requests
            pass

        def _send(self, status: int, payload: dict) -> None:
            body = (json.dumps(payload) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Bluegreen-Color", args.color)
            self.send_header("X-Bluegreen-Version", args.version)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _delay_and_fail(self) -> bool:
            if args.delay_ms:
                time.sleep(args.delay_ms / 1000)
            if args.error_rate and random.random() < args.error_rate:
                self._send(500, {"error": "injected failure", **identity})
                return True
            return False

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == args.health_path:
                ready = args.ready_status == 200
                self._send(
                    args.ready_status,
                    {"status": "ready" if ready else "unready", **identity},
                )
                return
            if self._delay_and_fail():
                return
            self._send(200, {"message": f"hello from {args.color}", "path": path, **identity})

        do_HEAD = do_GET

        def _write(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self._delay_and_fail():
                return
            self._send(200, {"accepted": self.command, "path": self.path, **identity})

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
    args = p.parse_args(argv)

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"{args.color} {args.version} listening on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
