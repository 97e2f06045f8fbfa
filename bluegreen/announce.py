"""What a webhook is told, and how: the one place a notice is posted (the `bluegreen` command's
cutover notices, cutover/notify.py, and the edge's maintenance window, components/notice.py).

The body is Slack-compatible JSON: `text` reads as one line in a channel, `bluegreen` carries the
same facts structured for anything else."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping

WEBHOOK_URL = "webhookUrl"
"""The edge stack's secret key (bluegreen:webhookUrl) of the notice webhook."""
POST_TIMEOUT_S = 5.0
"""How long one post may take before it is given up (connect, send and answer)."""

WINDOW_EVENTS = ("maintenance-planned", "maintenance-started", "maintenance-ended")


def post(url: str, body: Mapping, timeout: float = POST_TIMEOUT_S) -> None:
    """POST `body` as JSON; raises on a failed post (the caller decides what a failure costs)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "bluegreen"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read(64 * 1024)


def slack(text: str) -> str:
    """Text as Slack reads it literally: its three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def window_event(before: Mapping | None, after: Mapping) -> str | None:
    """Which announcement a change of the edge's maintenance (`{enabled, start, end, banner}`)
    makes: started, ended, or planned (the window's times changed while it is off); None when
    nothing worth announcing changed."""
    was = bool(before and before.get("enabled"))
    if after.get("enabled") and not was:
        return "maintenance-started"
    if was and not after.get("enabled"):
        return "maintenance-ended"
    times = (after.get("start"), after.get("end"))
    if (
        not after.get("enabled")
        and any(times)
        and times
        != (
            (before or {}).get("start"),
            (before or {}).get("end"),
        )
    ):
        return "maintenance-planned"
    return None


def window_notice(event: str, stack: str, window: Mapping, live: str | None) -> dict:
    """The body of one announcement of the maintenance window; `window` as `window_event` reads it
    (UTC times as text), `live` the colour serving."""
    start, end = window.get("start"), window.get("end")
    span = f"{start or 'now'} to {end or 'until further notice'} (UTC)"
    what = {
        "maintenance-planned": f"maintenance planned {span}",
        "maintenance-started": "maintenance started: writes are read-only"
        + (f" until {end} (UTC, planned)" if end else ""),
        "maintenance-ended": "maintenance ended: writes are open again",
    }[event]
    banner = window.get("banner")
    text = slack(f"bluegreen {stack}: {what}" + (f" — {banner}" if banner else ""))
    body = {
        "event": event,
        "stack": stack,
        "start": start,
        "end": end,
        "banner": banner or None,
        "live": live,
    }
    return {"text": text, "bluegreen": body}
