"""The maintenance window announced to the notice webhook by every update, whoever runs it.

A resource of the edge whose inputs are the maintenance settings (on or off, the planned start and
end, the banner). Its diff says "changed" only when they change, so the preview of a change of
window shows it next to the switch; it updates after the switch has applied the change, and posts
one notice: maintenance planned, started or ended (bluegreen/announce.py). The webhook is the
edge stack's secret bluegreen:webhookUrl, as for the command's cutover notices; without it nothing
is posted. A notice never fails the update: a post that fails is recorded in `announced`.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from bluegreen import announce

_INPUTS = ("enabled", "start", "end", "banner")


def _announce(before: dict | None, props: dict[str, Any]) -> dict | None:
    """Post what changed, if anything worth announcing did; what happened to the post."""
    event = announce.window_event(before, props)
    url = props.get("url")
    if event is None or not url:
        return None
    body = announce.window_notice(event, props["stack"], props, props.get("live"))
    try:
        announce.post(url, body)
    except Exception as err:  # the notice is news, not a gate: the update it reports on stands
        return {"event": event, "posted": False, "error": type(err).__name__}
    return {"event": event, "posted": True}


class WindowNoticeProvider(ResourceProvider):
    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="window", outs={**props, "announced": _announce(None, props)})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in _INPUTS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**news, "announced": _announce(olds, news)})


class WindowNotice(Resource, module="bluegreen", name="WindowNotice"):
    """The maintenance window's announcements; `announced` is the last one's fate."""

    announced: pulumi.Output[dict]

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(WindowNoticeProvider(), name, {**props, "announced": None}, opts)
