"""Maintenance (read-only) mode's settings (bluegreen:maintenance*): the refusal, the banner, the
planned window, and the queue that keeps writes meanwhile (queue_settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from bluegreen.config_parts.queue_settings import Queue, read_queue
from bluegreen.reader import BANNER, Reader


@dataclass(frozen=True)
class Window:
    """A planned maintenance window, announced on the edge's status page and by the webhook."""

    start: datetime | None
    end: datetime | None
    """While maintenance is on and the end is ahead, Retry-After counts down to it."""


def utc_text(moment: datetime | None) -> str | None:
    """The one spelling of a window's times: 2026-11-24T02:00:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


@dataclass(frozen=True)
class Maintenance:
    """Read-only mode at the edge: writes are refused with a retry hint, reads keep being served."""

    enabled: bool
    status: int
    """503 or 423 for refused writes."""
    retry_after_s: int
    """The Retry-After the refused writes carry, in seconds (unless a planned end is ahead)."""
    banner: str
    """A message every response carries in X-Bluegreen-Banner ("" for none)."""
    window: Window = field(default_factory=lambda: Window(None, None))
    queue: Queue = field(default_factory=Queue)


_UTC = "a UTC time such as 2026-11-24T02:00:00Z"


def _moment(read: Reader, key: str) -> datetime | None:
    raw = read.declared(key).strip()
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None or moment.utcoffset().total_seconds() != 0:
        read.problem(key, raw, _UTC)
        return None
    return moment


def _window(read: Reader) -> Window:
    start, end = _moment(read, "maintenanceStart"), _moment(read, "maintenanceEnd")
    if start and end and end <= start:
        read.problem(
            "maintenanceEnd", utc_text(end), f"a time after maintenanceStart {utc_text(start)}"
        )
    return Window(start, end)


def read_maintenance(read: Reader) -> Maintenance:
    status = read.integer("maintenanceStatus", 100, 599)
    if status not in (503, 423):
        read.problem("maintenanceStatus", status, "503 or 423")
    return Maintenance(
        enabled=read.flag("maintenance"),
        status=status,
        retry_after_s=read.integer("maintenanceRetryAfter", 1, 86400),
        banner=read.matching("maintenanceBanner", BANNER),
        window=_window(read),
        queue=read_queue(read),
    )
