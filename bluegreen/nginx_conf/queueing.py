"""The maintenance queue (bluegreen:maintenanceQueue): during maintenance, a keyed write to a
queued path is passed to the queue service (agents/edge/queue_service.py), which keeps it and
answers 202, instead of being refused; each client has a rate and connections of its own there.
Every fragment is empty unless a queue is on."""

from __future__ import annotations

import json

from bluegreen.config import Queue
from bluegreen.nginx import indent, render_group
from bluegreen.probe import CLIENT_HEADER, REQUEST_HEADERS, RETRY_AFTER_HEADER

QUEUE_REQUEST_HEADERS = {
    RETRY_AFTER_HEADER: "$bluegreen_retry_after",
    CLIENT_HEADER: "$remote_addr",
}
"""What the edge sends the queue service of `REQUEST_HEADERS`: the Retry-After it would have
answered, and the address the write came from (to the service, every write comes from nginx:
without it, all clients without a credential would share one client's share of the queue);
every other one is removed. Toward the arms, bluegreen/nginx_text/proxy.conf says."""
QUEUE_GROUP = "bluegreen_{app}_queue"
"""The upstream of the maintenance queue's service."""


def _on(queue: Queue | None) -> bool:
    return queue is not None and queue.enabled


def _group(app: str) -> str:
    return QUEUE_GROUP.format(app=app.replace("-", "_"))


def queue_zones(queue: Queue | None) -> str:
    """Each client's rate and connections at the queue, by its address, at the http level."""
    if not _on(queue):
        return ""
    return (
        "    limit_req_zone $binary_remote_addr zone=bluegreen_queue_rate:1m "
        f"rate={int(queue.rate)}r/s;\n"
        "    limit_conn_zone $binary_remote_addr zone=bluegreen_queue_conn:1m;\n"
    )


def queue_group(app: str, queue: Queue | None, queue_listen: str) -> str:
    """The queue service's upstream."""
    if not _on(queue):
        return ""
    return indent(render_group(_group(app), [(queue_listen, {})], 8))


def queue_divert(queue: Queue | None) -> str:
    """What takes a write switch.js marks for the queue, before maintenance refuses it: the
    queue's location, or 413 for a body over its cap."""
    if not _on(queue):
        return ""
    too_large = json.dumps(
        {
            "error": "too large",
            "message": f"a write kept during maintenance has at most {queue.max_body_kb} KiB",
        },
        separators=(",", ":"),
    )
    return f"""\
            # Maintenance with a queue: a keyed write to a queued path is kept (202, a receipt)
            # by the queue service instead of being refused.
            error_page 418 = @bluegreen_queue;
            recursive_error_pages on;
            if ($bluegreen_refuse = queue) {{ return 418; }}
            if ($bluegreen_refuse = 413) {{ return 413 '{too_large}'; }}
"""


def _headers() -> str:
    removed = '""'
    return "".join(
        f"            proxy_set_header {name} {QUEUE_REQUEST_HEADERS.get(name, removed)};\n"
        for name in REQUEST_HEADERS
    )


def queue_locations(app: str, queue: Queue | None) -> str:
    """The queue's location, and the refusal when its service does not answer."""
    if not _on(queue):
        return ""
    burst = f" burst={int(queue.burst)}" if queue.burst else ""
    return f"""\
        location @bluegreen_queue {{
            # The queue service caps bodies too: switch.js refuses by Content-Length, and a
            # chunked body is counted by the service.
            client_max_body_size {int(queue.max_body_kb)}k;
            proxy_pass http://{_group(app)};
            # Diverted in the rewrite phase, before the edge-wide limits (which may be off):
            # each client's own rate and connections cap what it can make the queue keep.
            limit_req zone=bluegreen_queue_rate{burst} nodelay;
            limit_req_status 429;
            limit_conn bluegreen_queue_conn {int(queue.connections)};
            limit_conn_status 429;
            proxy_http_version 1.1;
            proxy_headers_hash_bucket_size 128;
            proxy_set_header Connection "";
{_headers()}            # One Retry-After, the edge's: the service's own would repeat it.
            proxy_hide_header Retry-After;
            add_header Retry-After $bluegreen_retry_after always;
            add_header X-Bluegreen-Banner $bluegreen_banner always;
            # The queue service is down: the write is refused, as without a queue, not lost.
            error_page 502 504 = @bluegreen_unqueued;
        }}
        location @bluegreen_unqueued {{
            add_header Retry-After $bluegreen_retry_after always;
            return 503 $bluegreen_maintenance_body;
        }}
"""
