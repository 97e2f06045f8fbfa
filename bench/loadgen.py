"""A small open-loop HTTP load generator on asyncio, for loopback benches.

Four kinds of client, because they fail differently when nginx reloads:
- `new`: a new connection per request (what most load balancers' clients and browsers do).
- `keepalive-retry`: kept-alive connections; an idempotent request that finds its connection
  closed by the server is retried once on a new one (what well-behaved HTTP clients do).
- `keepalive`: kept-alive connections, no retry: shows what a naive client sees.
- `keepalive-post`: kept-alive connections sending `POST /` with a small body, never retried:
  a POST is not idempotent, so even a well-behaved client must not resend it.

`GET /` for all but `keepalive-post`. Each Result's `start` is a `time.perf_counter()` stamp.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

KINDS = ("new", "keepalive-retry", "keepalive", "keepalive-post")
POST_BODY = b'{"bench": "keepalive-post"}'


@dataclass
class Result:
    start: float
    seconds: float
    status: int | None
    color: str | None
    error: str | None = None


@dataclass
class Client:
    kind: str
    host: str
    port: int
    results: list[Result] = field(default_factory=list)
    _pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown client kind {self.kind!r}: one of {', '.join(KINDS)}")

    async def _exchange(self, reader, writer) -> tuple[int, str | None, bool]:
        keep = self.kind != "new"
        if self.kind == "keepalive-post":
            head = b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            head += b"Content-Length: %d\r\n" % len(POST_BODY)
            body = POST_BODY
        else:
            head, body = b"GET / HTTP/1.1\r\nHost: bench\r\n", b""
        writer.write(head + (b"" if keep else b"Connection: close\r\n") + b"\r\n" + body)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionResetError("closed before answering")
        status = int(status_line.split()[1])
        length, color, closes = 0, None, not keep
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "x-bluegreen-color":
                color = value
            elif name == "connection" and value.lower() == "close":
                closes = True
        await reader.readexactly(length)
        return status, color, closes

    async def request(self) -> None:
        start = time.perf_counter()
        # Only an idempotent request is retried; a POST never is (`keepalive-post`).
        attempts = 2 if self.kind == "keepalive-retry" else 1
        error = None
        for attempt in range(attempts):
            # A retry always goes on a new connection: another pooled one may be just as stale.
            reused = bool(self._pool) and self.kind != "new" and attempt == 0
            try:
                if reused:
                    reader, writer = self._pool.pop()
                else:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                status, color, closes = await asyncio.wait_for(self._exchange(reader, writer), 5)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                error = type(exc).__name__
                if reused and attempt + 1 < attempts:
                    continue  # the server closed an idle kept-alive connection: retry once
                break
            if closes:
                writer.close()
            else:
                self._pool.append((reader, writer))
            self.results.append(Result(start, time.perf_counter() - start, status, color))
            return
        self.results.append(Result(start, time.perf_counter() - start, None, None, error))

    def close(self) -> None:
        """Close the kept-alive connections left in the pool."""
        while self._pool:
            self._pool.pop()[1].close()

    def errors(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for r in self.results:
            if r.status is None or r.status >= 500:
                key = r.error or f"HTTP {r.status}"
                kinds[key] = kinds.get(key, 0) + 1
        return kinds

    def failures(self) -> int:
        return sum(1 for r in self.results if r.status is None or r.status >= 500)


async def run(clients: list[Client], rate: float, stop: asyncio.Event) -> None:
    """Send `rate` requests per second in total, round-robin over the clients, until `stop`."""
    interval = 1.0 / rate
    tasks: set[asyncio.Task] = set()
    next_at = time.perf_counter()
    i = 0
    while not stop.is_set():
        client = clients[i % len(clients)]
        task = asyncio.create_task(client.request())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    for client in clients:
        client.close()
