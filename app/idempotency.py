"""What the reference service remembers of writes, every part of it bounded.

- **Replays**: the first answer to each client's `Idempotency-Key`, so that the same key is
  answered as the first time and applied once (the RFC draft "The Idempotency-Key HTTP Header
  Field"), kept for `retention_s` (a day by default, long after the edge's queue gives up
  retrying) and at most `max_keys` of them. A key is only forgotten once its time is up: when
  every place is taken by a key still in its time, a write with a new key is refused (503,
  Retry-After) before it is applied, never applied and then forgotten, which would let a replay
  apply it twice. A place is reserved before the write is applied, so writes in flight count.
  One client (as the service tells clients apart) holds at most `max_per_client` places, so
  that one sending new keys without end fills its own share, not everyone's.
- A **lock per key** while a write with it is under way (a replay arriving during the first
  write waits for its answer), dropped when the last writer with that key leaves.
- The **journal** of writes received (`GET /_arm/writes`): the last `max_entries`, and how many
  older ones it no longer lists.

Standard library only, and nothing of bluegreen: this stands for a user's service.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator

KEY_MAX = 255
"""The longest Idempotency-Key taken, as the edge's queue takes them (agents/edge)."""


def valid_key(key: str) -> bool:
    """1 to 255 visible ASCII characters, no spaces."""
    return 0 < len(key) <= KEY_MAX and all("!" <= c <= "~" for c in key)


class Full(Exception):
    """Every place for a key is taken by one still within its retention."""


class ClientFull(Full):
    """This client holds its whole share of the places: one client cannot take them all."""


Scoped = tuple[str, str]  # (client, key): another client's same key is another write


def client_of(headers, peer: str) -> str:
    """Who sent a write: a digest of its Authorization, else its Cookie, else its address; the
    same rule as the queue's (agents/edge/intents.py client_id), kept apart from bluegreen."""
    for name in ("Authorization", "Cookie"):
        if headers.get(name):
            return hashlib.sha256(f"{name.lower()}:{headers[name]}".encode()).hexdigest()
    return hashlib.sha256(f"peer:{peer}".encode()).hexdigest()


class Replays:
    def __init__(
        self,
        max_keys: int,
        retention_s: float,
        max_per_client: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_keys, self.retention_s, self.clock = max_keys, retention_s, clock
        self.max_per_client = max_keys if max_per_client is None else max_per_client
        self._per_client: collections.Counter[str] = collections.Counter()  # kept and reserved
        self._lock = threading.Lock()
        self._answers: collections.OrderedDict[Scoped, tuple[float, tuple]] = (
            collections.OrderedDict()
        )  # oldest first: each is kept once, when its write took effect
        self._reserved = 0  # places held by new keys whose write is under way
        self._held: dict[Scoped, list] = {}  # key -> [its lock, writers with it]

    def __len__(self) -> int:
        with self._lock:
            return len(self._answers)

    @contextlib.contextmanager
    def hold(self, scoped: Scoped) -> Iterator[Slot]:
        """The key's lock for one write, and what it was first answered (`slot.first`), or a
        reserved place to keep this write's answer in (`slot.keep`). Raises Full (ClientFull
        when this client holds its whole share), holding nothing, when a new key has no place."""
        client = scoped[0]
        with self._lock:
            entry = self._held.setdefault(scoped, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                with self._lock:
                    first = self._first(scoped)
                    if first is None:
                        self._expire()
                        if self._per_client[client] >= self.max_per_client:
                            raise ClientFull(f"this client holds {self.max_per_client} keys")
                        if len(self._answers) + self._reserved >= self.max_keys:
                            raise Full(f"{self.max_keys} keys kept, none older than its retention")
                        self._reserved += 1
                        self._per_client[client] += 1
                slot = Slot(first)
                try:
                    yield slot
                finally:
                    if first is None:
                        with self._lock:
                            self._reserved -= 1
                            if slot.kept is None:
                                self._drop_client(client)
                            else:  # last in the order: the newest
                                if self._answers.pop(scoped, None) is not None:
                                    self._drop_client(client)  # an expired one left behind
                                self._answers[scoped] = (self.clock(), slot.kept)
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._held[scoped]

    def _first(self, scoped: Scoped) -> tuple | None:
        kept = self._answers.get(scoped)
        if kept is None or self.clock() - kept[0] >= self.retention_s:
            return None
        return kept[1]

    def _expire(self) -> None:
        now = self.clock()
        while self._answers:
            scoped, (at, _) = next(iter(self._answers.items()))
            if now - at < self.retention_s:
                return
            del self._answers[scoped]
            self._drop_client(scoped[0])

    def _drop_client(self, client: str) -> None:
        self._per_client[client] -= 1
        if not self._per_client[client]:
            del self._per_client[client]  # no count kept for a client holding nothing

    def locks_held(self) -> int:
        with self._lock:
            return len(self._held)

    def clients(self) -> int:
        """Clients holding a key or a place: what the per-client counts cost."""
        with self._lock:
            return len(self._per_client)


class Slot:
    """One write's hold on its key: `first`, the answer kept for it before, or None; `keep` the
    answer of this write once it took effect."""

    def __init__(self, first: tuple | None) -> None:
        self.first = first
        self.kept: tuple | None = None

    def keep(self, answer: tuple) -> None:
        assert self.first is None, "a key's answer is kept once"
        self.kept = answer


class Journal:
    """The last `max_entries` writes received, in order, and how many older ones were let go."""

    def __init__(self, max_entries: int) -> None:
        self._lock = threading.Lock()
        self._entries: collections.deque[dict] = collections.deque(maxlen=max_entries)
        self.dropped = 0

    def add(self, entry: dict) -> None:
        with self._lock:
            if len(self._entries) == self._entries.maxlen:
                self.dropped += 1
            self._entries.append(entry)

    def read(self) -> tuple[list[dict], int]:
        with self._lock:
            return list(self._entries), self.dropped
