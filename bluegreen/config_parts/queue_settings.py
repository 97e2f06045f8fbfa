"""The maintenance queue's settings (bluegreen:maintenanceQueue*): which writes are kept during
maintenance, where, and how much the queue keeps before it answers 503."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bluegreen.reader import NAMESPACE, URL_PATH, Reader

QUEUE_STORES = ("sqlite", "postgresql")
POSTGRES_URL = r"postgres(ql)?://[^\s]+$"
QUEUE_DSN = "maintenanceQueueDsn"
"""The secret key of the PostgreSQL intent store's DSN; platforms read it with get_secret."""
SECRET = "[secret]"
"""A value the stack's file keeps encrypted, read outside the engine without decrypting it (as
`pulumi config` shows it): set, but not for the operator's command to check."""


@dataclass(frozen=True)
class Queue:
    """Write intents kept during maintenance: a write to one of `paths` that carries an
    Idempotency-Key is stored durably and answered 202 with a receipt, then replayed to the active
    arm once writes are open again, in arrival order: sent at least once, applied once by the
    arm's Idempotency-Key dedupe."""

    paths: tuple[str, ...] = ()
    """Path prefixes whose keyed writes are queued (() : none, every write is refused)."""
    store: str = "sqlite"
    """"sqlite" on the edge host, or "postgresql" for edges on several hosts (the DSN is the
    secret bluegreen:maintenanceQueueDsn, read by the platform, never kept here)."""
    max_body_kb: int = 64
    soak_s: int = 5
    """How long writes must stay open before the queued intents are replayed."""
    rate: int = 5
    """Queued writes per second one client (address) may send; more are answered 429. The
    intake is diverted before the edge-wide limits apply, so this one always does."""
    burst: int = 10
    """Queued writes above `rate` one client may send at once."""
    connections: int = 4
    """Connections one client may have open to the intake at once; more are answered 429."""
    max_pending: int = 10_000
    """Most pending intents the store keeps (all edges sharing it); past it 503, never 202."""
    max_pending_mb: int = 256
    """Most MiB of pending intents (bodies and headers) the store keeps."""
    max_per_client: int = 2_500
    """Most pending intents one client (its credential, else its address) may have."""
    min_free_mb: int = 256
    """SQLite: MiB the disk under the store keeps free; a write that would leave less is 503."""
    retry_minutes: int = 10
    """How long a queued write is retried through transient failures before it is dead."""

    @property
    def enabled(self) -> bool:
        return bool(self.paths)


def read_queue(read: Reader) -> Queue:
    paths = read.strings("maintenanceQueue")
    for path in paths:
        if not URL_PATH.fits(path):
            read.problem("maintenanceQueue", path, URL_PATH.allowed + " (a write path to queue)")
    store = read.choice("maintenanceQueueStore", QUEUE_STORES, '"sqlite" or "postgresql"')
    dsn = read.optional(QUEUE_DSN) or ""
    checkable = dsn != SECRET  # the engine checks the decrypted value on every update
    if paths and store == "postgresql" and checkable and not re.match(POSTGRES_URL, dsn):
        # The DSN holds a password: never shown, not even in an error.
        read.problems.append(
            f"{NAMESPACE}:{QUEUE_DSN} must be a postgresql:// URL when "
            f'{NAMESPACE}:maintenanceQueueStore is "postgresql"; it is '
            f"{'set to something else (not shown: it is a secret)' if dsn else 'not set'}. Set it "
            f"with: pulumi config set --secret --stack {read.stack} {NAMESPACE}:{QUEUE_DSN} "
            "postgresql://user:password@host:5432/db"
        )
    return Queue(
        paths=paths,
        store=store,
        max_body_kb=read.integer("maintenanceQueueMaxBodyKb", 1, 10240),
        soak_s=read.integer("maintenanceSoakSeconds", 0, 3600),
        rate=read.integer("maintenanceQueueRate", 1, 10000),
        burst=read.integer("maintenanceQueueBurst", 0, 100000),
        connections=read.integer("maintenanceQueueConnections", 1, 100000),
        **_caps(read),
    )


def _caps(read: Reader) -> dict[str, int]:
    """How much the queue keeps, and how long it retries: it answers 503 rather than grow."""
    caps = {
        "max_pending": read.integer("maintenanceQueueMaxPending", 1, 10_000_000),
        "max_pending_mb": read.integer("maintenanceQueueMaxPendingMb", 1, 1_000_000),
        "max_per_client": read.integer("maintenanceQueueMaxPerClient", 1, 10_000_000),
        "min_free_mb": read.integer("maintenanceQueueMinFreeMb", 0, 1_000_000),
        "retry_minutes": read.integer("maintenanceQueueRetryMinutes", 1, 10_080),
    }
    if caps["max_per_client"] > caps["max_pending"]:
        read.problem(
            "maintenanceQueueMaxPerClient",
            caps["max_per_client"],
            f"at most maintenanceQueueMaxPending ({caps['max_pending']})",
        )
    return caps
