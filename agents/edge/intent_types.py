"""What the intent store speaks in: its errors, its caps, a kept write and the answer to one.

The bottom of agents/edge: the sealing (sealing.py), the store (intent_store.py and its two
dialects) and the front door (intents.py) all import these, and these import none of them.
"""

from __future__ import annotations

from dataclasses import dataclass


class StoreError(Exception):
    """The store cannot be opened or used as asked; the message says what to fix."""


class KeyReused(StoreError):
    """An Idempotency-Key came back with a different request: the client has a bug (HTTP 422)."""


class QueueFull(StoreError):
    """The queue, this client's share of it, or the disk under it is full (HTTP 503)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        """"queue-full", "client-full" or "disk-full"."""


class Unopened(StoreError):
    """A row's sealed headers do not open with the store's own key: the row was changed."""


@dataclass(frozen=True)
class Limits:
    """What the queue keeps at most: it answers 503 rather than grow without bound. The stack's
    defaults are written in Pulumi.yaml (bluegreen:maintenanceQueueMax*, ...MinFreeMb)."""

    max_pending: int = 10_000
    max_pending_bytes: int = 256 << 20
    max_per_client: int = 2_500
    """Pending intents one client may have: one client cannot fill the queue for the others."""
    min_free_bytes: int = 256 << 20
    """SQLite only: space the disk under the store keeps free after a write."""


@dataclass(frozen=True)
class Accepted:
    receipt: str
    seq: int
    duplicate: bool
    """True when the key was seen before: `receipt` is the first request's."""


@dataclass(frozen=True)
class Intent:
    receipt: str
    seq: int
    key: str
    method: str
    path: str
    headers: dict[str, str]
    """The kept headers, sealed ones opened: what the replay sends."""
    body: bytes
    received_at: float
    attempts: int
    state: str
    last_status: int | None
    last_error: str | None
    client: str = ""
    first_failed_at: float | None = None
    """When the first of the current run of transient failures happened (None: none yet)."""
