"""What of a kept write is sealed, with which key, bound to what.

Every header but a few harmless ones (CLEAR_HEADERS) is needed again on replay and may carry a
credential, so it is kept sealed with AES-256-GCM, bound to the row's receipt, method, path,
body, key and client: a copy of the store or a dump alone does not leak them, and a row changed
under a victim's sealed credentials does not open (it is a dead letter, never sent).

The key is a file (load_key), owner-only like the store itself (owner_only).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agents.edge.intent_types import StoreError, Unopened

CLEAR_HEADERS = (
    "content-type",
    "content-language",
    "content-encoding",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "user-agent",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
)
"""Headers that say how to read the request, never who sends it: the only ones stored in clear.
Every other kept header (credentials, cookies, API keys, anything unknown) is sealed."""

HOP_BY_HOP = ("connection", "keep-alive", "transfer-encoding", "te", "upgrade", "content-length")
"""Headers about the hop to the queue, not the request: replaying them would lie to the edge."""

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_CHECK = b"bluegreen intent store"
"""Sealed into the store at its first open: a key that does not open it is the wrong key, so a
row that then fails to open was changed, not misread."""


def kept_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(clear, sealed) headers worth replaying. Our own `x-bluegreen-*` are the edge's
    instructions to the queue (retry-after, replay marks): replayed, they would be obeyed twice.
    The Idempotency-Key is kept in its own column."""
    clear: dict[str, str] = {}
    sealed: dict[str, str] = {}
    for name, value in headers.items():
        low = name.lower()
        if (
            low in HOP_BY_HOP
            or low in ("host", "idempotency-key")
            or low.startswith("x-bluegreen-")
        ):
            continue
        if low in CLEAR_HEADERS:
            clear[low] = value
        else:
            sealed[low] = value
    return clear, sealed


def owner_only(path: str, what: str) -> None:
    """Refuse a file others can read: it holds queued requests, keys or a password."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise StoreError(
            f"{what} {path} is mode {mode:04o}, readable by others than its owner; "
            f"make it owner-only (chmod 600 {path})"
        )


def load_key(path: str, create: bool = False) -> bytes:
    """The 32-byte sealing key at `path`; a key others can read is refused rather than trusted.
    `create` makes one (0600, in a 0700 directory) if missing: only `open_keyed` asks, for a
    store with nothing sealed in it, since a new key makes every sealed row unreadable."""
    path = os.path.abspath(path)
    if not os.path.exists(path):
        if not create:
            raise StoreError(
                f"no key file at {path}: the intent store's sealed headers need the key they "
                "were sealed with; restore it there (on PostgreSQL, the same file every edge "
                "host uses)"
            )
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: read theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
    owner_only(path, "key file")
    with open(path, "rb") as f:
        key = f.read()
    if len(key) != KEY_BYTES:
        raise StoreError(f"key file {path} holds {len(key)} bytes; a key is {KEY_BYTES} bytes")
    return key


def bound_to(receipt: str, method: str, path: str, digest: str, key: str, client: str) -> bytes:
    """The associated data a row's seal is bound to: everything the replay acts on. A victim's
    sealed Authorization does not open under a row whose method, path, body, key or client was
    changed, nor on another row."""
    return json.dumps([receipt, method, path, digest, key, client]).encode()


class Sealer:
    """AES-256-GCM under the store's key, or no key at all: a store opened without it can count
    its rows, never seal or open one."""

    def __init__(self, key: bytes | None) -> None:
        if key is not None and len(key) != KEY_BYTES:
            raise StoreError(f"the sealing key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key) if key is not None else None

    @property
    def keyed(self) -> bool:
        return self._aead is not None

    def key_check(self) -> bytes:
        """KEY_CHECK sealed under this key: what a store keeps at its first keyed open."""
        assert self._aead is not None
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, KEY_CHECK, b"key-check")

    def check(self, blob: bytes) -> None:
        """Refuse a key that does not open the store's key check: the wrong key, before any row
        is read."""
        assert self._aead is not None
        try:
            self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], b"key-check")
        except InvalidTag:
            raise StoreError(
                "the key does not open this intent store (its sealed headers do not open with "
                "this key): is --key-file the one the store was written with?"
            ) from None

    def seal(self, aad: bytes, values: dict[str, str]) -> bytes:
        if self._aead is None:
            raise StoreError("the store was opened without its key: nothing can be sealed")
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, json.dumps(values).encode(), aad)

    def open(self, receipt: str, aad: bytes, blob: bytes | None) -> dict[str, str]:
        # Every row is sealed, even with no header to hide: a row without a seal that opens was
        # not written by a queue service holding the key.
        if self._aead is None:
            raise StoreError("the store was opened without its key: nothing can be opened")
        if not blob:
            raise Unopened(f"intent {receipt} has no seal: it was not written by the queue")
        blob = bytes(blob)
        try:
            plain = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise Unopened(
                f"the sealed headers of intent {receipt} do not open: its method, path, body, "
                "key or client was changed after it was accepted; never sent"
            ) from None
        return json.loads(plain)
