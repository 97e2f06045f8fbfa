"""A webhook receiver on loopback, for the notices' tests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "T0001/B0002/s3cr3tT0ken"


class Receiver:
    """An HTTP server on loopback that records each POST; `hang` keeps a request unanswered
    until the receiver is stopped (at most 30 s); `status` is what it answers."""

    def __init__(self, hang: bool = False, status: int = 200) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.headers.append(dict(self.headers))
                receiver.bodies.append(json.loads(body))
                if hang:
                    receiver.release.wait(30)
                    return  # closes without an answer
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = False  # server_close() joins every request's thread
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/{SECRET}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
