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
