"""What the local platform's arm and edge share: everything listens on loopback, on ports that
must be free (or already the stack's own) before anything is declared."""

from __future__ import annotations

import ipaddress
import os

from bluegreen.config import ConfigError
from bluegreen.reader import Reader
from platforms.local.process import port_in_use

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""The project: what the local processes run from."""


def read_bind_address(read: Reader) -> str:
    """bluegreen:bindAddress: every local process and the local edge listen on loopback only."""
    value = read.declared("bindAddress")
    try:
        if not ipaddress.ip_address(value).is_loopback:
            read.problem("bindAddress", value, "a loopback address on the local platform")
    except ValueError:
        read.problem("bindAddress", value, "an IP address such as 127.0.0.1")
    return value


def refuse_taken(host: str, port: int, key: str, ours: bool) -> None:
    # A taken port must fail the preview, not the update: an arm replaced onto a taken port
    # would already have lost its running process by the time its new one fails to bind.
    if port_in_use(host, port) and not ours:
        raise ConfigError(
            [
                f"bluegreen:{key} {port} is already in use on {host} by another process; "
                "choose a free port (nothing was changed)"
            ]
        )
