"""A watcher that counts which colour answers the edge while a test changes it."""

from __future__ import annotations

import threading
import time

from bluegreen import probe


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


class SiteUsers:
    """Users at every site of several edges: one each, a request at a time on a fresh
    connection (as curl makes them), recording how many were sent, every failure, and when
    each colour first answered at each site."""

    def __init__(self, urls: dict[str, str], pause: float = 0.005) -> None:
        self.urls = urls
        self.pause = pause
        self.requests = 0
        self.first: dict[tuple[str, str], float] = {}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(s,)) for s in urls]

    def _run(self, site: str) -> None:
        while not self._stop.is_set():
            answer = probe.request(self.urls[site], timeout=2)
            self.requests += 1  # one thread per site; the GIL keeps the sum whole
            if answer.color is None:
                self.failures.append(f"{site}: {answer.describe()}")
            else:
                self.first.setdefault((site, answer.color), time.monotonic())
            time.sleep(self.pause)

    def __enter__(self) -> SiteUsers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
