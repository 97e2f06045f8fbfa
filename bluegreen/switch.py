"""What every platform's traffic switch does alike, whatever realises it (nginx, an ALB, a
Kubernetes Service): the requests maintenance mode refuses and the answer they get, and the
fingerprint a switch's config is known by. The weights the pointer implies are
`EdgeSettings.weights`."""

from __future__ import annotations

import hashlib
import json

from bluegreen.config import Maintenance

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
"""Requests that maintenance (read-only) mode refuses at every edge; reads keep being served."""


STATUS_PATH = "/_bluegreen/status"
"""The edge's status document (JSON): the live colour and version, maintenance and its window;
`STATUS_PATH + ".html"` is the same as a page. Read-only, like everything under /_bluegreen/."""
LEASE_PATH = "/_bluegreen/lease"
"""The writer lease (`bluegreen writer`), read-only."""


MAINTENANCE_MESSAGE = "The service is read-only for maintenance; retry later."


def maintenance_body(m: Maintenance) -> str:
    """The stable machine-readable answer to a refused write."""
    return json.dumps(
        {
            "error": "maintenance",
            "status": m.status,
            "retryAfter": m.retry_after_s,
            "message": MAINTENANCE_MESSAGE,
        },
        separators=(",", ":"),
    )


def generation(text: str) -> str:
    """A short fingerprint of a switch's config; an edge answers with it so a probe can tell
    which config is serving (nginx can keep the old one while `nginx -s reload` returns 0)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]
