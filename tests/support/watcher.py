"""A watcher that counts which colour answers the edge while a test changes it."""

from __future__ import annotations

import threading
import time

from bluegreen import probe
from bluegreen.rfc2136 import lookup


class Watcher:
    """Sends requests through the edge on a fresh connection each, recording who answered."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[str | None] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            answer = probe.request(self.url, timeout=2)
            self.seen.append(answer.color)
            if answer.color is None:
                self.failures.append(f"{answer.describe()} {answer.body[:200]!r}")
            time.sleep(0.005)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class Users:
    """Users making requests on threads of their own until the `with` block ends."""

    def __init__(self, runs: list[tuple]) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=args) for args in runs]

    def _run(self, *args) -> None:
        raise NotImplementedError

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


class SiteUsers(Users):
    """Users at every site of several edges: one each, a request at a time on a fresh
    connection (as curl makes them), recording how many were sent, every failure, and when
    each colour first answered at each site."""

    def __init__(self, urls: dict[str, str], pause: float = 0.005) -> None:
        self.urls = urls
        self.pause = pause
        self.requests = 0
        self.first: dict[tuple[str, str], float] = {}
        self.failures: list[str] = []
        super().__init__([(site,) for site in urls])

    def _run(self, site: str) -> None:
        while not self._stop.is_set():
            answer = probe.request(self.urls[site], timeout=2)
            self.requests += 1  # one thread per site; the GIL keeps the sum whole
            if answer.color is None:
                self.failures.append(f"{site}: {answer.describe()}")
            else:
                self.first.setdefault((site, answer.color), time.monotonic())
            time.sleep(self.pause)


class ResolvingUsers(Users):
    """Users who reach the service by its name, as a browser or curl does: each resolves the
    live name at the authoritative server (keeping the answer for its TTL, at most `cache_s`),
    and sends each request on a fresh connection to the first address, going on to the next when
    the connection fails before any byte of an answer (refused, reset, timed out): curl does so
    when a connection cannot be made, browsers and HTTP libraries also for an idempotent request
    on a reset connection. A failure is a request no address answered. `failovers` counts the
    requests that needed a second address."""

    def __init__(self, name: str, server: str, port: int, users: int = 3, cache_s: float = 1.0):
        self.name, self.server, self.port, self.cache_s = name, server, port, cache_s
        self.requests = 0
        self.failovers = 0
        self.failures: list[str] = []
        self.answered: dict[str, int] = {}
        """Requests answered per edge address."""
        super().__init__([(i,) for i in range(users)])

    def _run(self, turn: int) -> None:
        addresses: list[str] = []
        expires = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= expires:
                addresses, ttl = lookup(self.name, self.server)
                expires = time.monotonic() + min(ttl or 0, self.cache_s)
            # Each user starts at its own place in the answer, as resolvers rotate it.
            k = turn % max(len(addresses), 1)
            ordered = addresses[k:] + addresses[:k]
            turn += 1
            tried: list[str] = []
            for host in ordered:
                answer = probe.request(f"http://{host}:{self.port}/", timeout=2)
                if answer.status is not None:
                    self.answered[host] = self.answered.get(host, 0) + 1
                    if answer.color is None:
                        self.failures.append(f"{host}: {answer.describe()}")
                    break
                tried.append(f"{host}: {answer.describe()}")
            else:
                self.failures.append("; ".join(tried) or "the name had no address")
            self.requests += 1
            self.failovers += bool(tried) and len(tried) < len(ordered)
            time.sleep(0.005)
