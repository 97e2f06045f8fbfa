"""Notices of a cutover to a webhook: a flip started, a hold held, a rollback, a failure.

The URL is the edge stack's secret `bluegreen:webhookUrl` (`pulumi config set --secret`); when it
is not set, nothing is posted. The body is Slack-compatible JSON: `text` reads as one line in a
channel, and `bluegreen` carries the same facts structured for anything else:

    {"text": "bluegreen live: flip blue -> green rolled back during the 25% step: ...",
     "bluegreen": {"event": "rolled-back", "command": "flip", "stack": "live", "from": "blue",
                   "to": "green", "step": 25, "weights": {...}, "versions": {...},
                   "reason": "...", "figures": {"green": {"requests": 80, ...}}}}

A notice never holds up the cutover: posts go out in order on a background thread with a short
timeout, a failed one prints one warning line and is dropped, and at the end of the command the
posts in flight get a bounded wait. A webhook that hangs cannot delay a rollback.
"""

from __future__ import annotations

import queue
import sys
import threading
import urllib.error
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from bluegreen import announce
from bluegreen.config import NAMESPACE, SECRET, weights_for

if TYPE_CHECKING:
    from cutover.workspace import Workspace

KEY = f"{NAMESPACE}:{announce.WEBHOOK_URL}"
POST_TIMEOUT_S = announce.POST_TIMEOUT_S
WAIT_S = 5.0
"""How long the command waits at its end for posts still in flight."""

EVENTS = ("started", "held", "rolled-back", "failed")
# What the procedure's phases (as the flip log names them) are as a notice.
_PHASES = {"done": "held", "refused": "failed", "interrupted": "failed"}
_PHASE_WORDS = {"refused": "refused", "interrupted": "interrupted"}


class BadUrl(ValueError):
    """The webhook URL is not one this posts to; the sentence names the key and what is allowed."""


def redact(url: str) -> str:
    """Enough of a secret URL to recognise it: its scheme and host, never its path or token."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme and parts.hostname:
        return f"{parts.scheme}://{parts.hostname}/…"
    return f"{url.strip()[:4]}… ({len(url.strip())} characters)"


def checked(url: str, stack: str) -> str:
    """`url` if it is an http or https URL with a host; else `BadUrl`, showing it redacted."""
    url = url.strip()
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        parts, host = None, None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not host
        or any(c.isspace() for c in url)
    ):
        raise BadUrl(
            f'{KEY} of stack "{stack}" must be an http:// or https:// URL with a host, such as '
            f'https://hooks.slack.com/services/...; got "{redact(url)}" (shown redacted: it is a '
            f"secret). Set it with: pulumi config set --secret --stack {stack} {KEY} <url>"
        )
    return url


def _percent(value: float) -> str:
    return f"{value * 100:.2f}%"


def _figures(figures: Mapping | None) -> str:
    """`green 80 requests, 2.50% 5xx, p95 12.3 ms; blue ...` from the flip log's figures."""
    if not figures:
        return ""
    said = []
    for color, f in figures.items():
        requests, errors = f.get("requests") or 0, f.get("errors") or 0
        rate = _percent(errors / requests) if requests else "-"
        p95 = f"{f['p95Ms']:.1f} ms" if f.get("p95Ms") is not None else "-"
        said.append(f"{color} {requests} requests, {rate} 5xx, p95 {p95}")
    return "; ".join(said)


def _reason(fields: Mapping) -> str | None:
    reason = fields.get("reason") or fields.get("breach") or fields.get("error")
    if not reason and fields.get("violations"):
        reason = "; ".join(f"{v['policy']}: {v['message']}" for v in fields["violations"])
    if fields.get("cleanup"):
        reason = f"{reason}; {fields['cleanup']}" if reason else fields["cleanup"]
    return reason


def _weights(
    command: str, event: str, frm: str | None, to: str | None, step: int | None
) -> dict[str, int] | None:
    """What the edge serves once the event is over, where the event says."""
    if not to or event == "failed" or event == "started":
        return None
    if event == "held":
        return weights_for(to, step)
    if command == "flip":  # rolled back to where it was
        return weights_for(frm) if frm else None
    return weights_for(to)


def notice(command: str, phase: str, fields: Mapping, stack: str) -> dict:
    """The body posted for one event of `command` (flip, watch, rollback), `phase` as the flip log
    names it, `fields` as the flip log records them."""
    event = _PHASES.get(phase, phase)
    if fields.get("cleanup"):
        event = "failed"  # the flip's own rollback failed
    frm, to = fields.get("from"), fields.get("to")
    step = fields.get("step") or fields.get("failedStep")
    weights = fields.get("weights") or _weights(command, event, frm, to, step)
    figures = fields.get("figures") or fields.get("seen")
    reason = _reason(fields)
    at = f" at {step}%" if step else ""
    during = f" during the {step}% step" if step else ""
    steps = ", ".join(f"{s}%" for s in fields.get("steps") or [])
    flip = f"flip {frm} → {to}" if frm else f"flip to {to}"
    if command == "flip":
        what = {
            "started": f"{flip} started" + (f" (steps {steps})" if steps else ""),
            "held": f"{to} held{at}" if phase == "held" else f"{flip} done",
            "rolled-back": f"{flip} rolled back{during}" + (f"; {frm} serves again" if frm else ""),
            "failed": f"{flip} {_PHASE_WORDS.get(phase, 'failed')}{during}",
        }[event]
    elif command == "watch":
        what = {
            "held": f"watch: {to} held{at}",
            "rolled-back": f"watch: rolled {frm} back to {to}",
            "failed": f"watch: rolling {frm} back to {to} failed",
        }[event]
    else:
        what = {
            "rolled-back": f"rolled back {frm} → {to}",
            "failed": f"rollback {frm} → {to} failed",
        }[event]
    seconds = fields.get("seconds")
    if seconds is not None:
        what += f" after {seconds:.1f} s"
    text = " ".join(
        announce.slack(part)
        for part in (
            f"bluegreen {stack}: {what}",
            f"— {reason}" if reason else "",
            f"[{_figures(figures)}]" if figures else "",
        )
        if part
    )
    body = {
        "event": event,
        "command": command,
        "stack": stack,
        "from": frm,
        "to": to,
        "step": step,
        "weights": weights,
        "versions": fields.get("versions"),
        "reason": reason,
        "figures": figures,
    }
    return {"text": text, "bluegreen": body}


class Webhook:
    """Posts notices to one URL, in order, on a background thread that never raises.

    Call it as the procedure's `notify(command, phase, fields)`; `close(timeout)` at the end of
    the command waits at most `timeout` seconds for what is still in flight."""

    def __init__(
        self,
        url: str,
        stack: str,
        warn: Callable[[str], object] = print,
        timeout: float = POST_TIMEOUT_S,
    ) -> None:
        self.url, self.stack, self.warn, self.timeout = url, stack, warn, timeout
        self.delivered = 0
        self._queue: queue.Queue[dict | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __call__(self, command: str, phase: str, fields: Mapping) -> None:
        try:
            body = notice(command, phase, fields, self.stack)
        except Exception as err:  # a notice must never break the cutover it reports on
            self.warn(f"bluegreen: warning: no webhook notice for {command} {phase}: {err!r}")
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="bluegreen-webhook", daemon=True
                )
                self._thread.start()
        self._queue.put(body)

    def _run(self) -> None:
        while (body := self._queue.get()) is not None:
            try:
                self._post(body)
                self.delivered += 1
            except Exception as err:
                what = body["bluegreen"]["event"]
                self.warn(
                    f"bluegreen: warning: the webhook ({redact(self.url)}) did not take the "
                    f'"{what}" notice: {_why(err)}; carrying on without it'
                )

    def _post(self, body: dict) -> None:
        announce.post(self.url, body, self.timeout)

    def close(self, timeout: float = WAIT_S) -> bool:
        """Wait at most `timeout` seconds for the posts in flight; True when none is left."""
        with self._lock:
            thread = self._thread
        if thread is None:
            return True
        self._queue.put(None)
        thread.join(timeout)
        if thread.is_alive():
            left = self._queue.qsize()
            self.warn(
                f"bluegreen: warning: the webhook ({redact(self.url)}) is still busy after "
                f"{timeout:g} s; not waiting for it ({left} notice(s) not sent)"
            )
            return False
        with self._lock:
            self._thread = None
        return True


def _why(err: BaseException) -> str:
    """A failed post in a few words, without the URL (a secret)."""
    if isinstance(err, urllib.error.HTTPError):
        return f"it answered {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        err = err.reason if isinstance(err.reason, BaseException) else err
    if isinstance(err, TimeoutError | OSError) and "timed out" in str(err):
        return "no answer in time"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return str(err) or type(err).__name__


class Told:
    """The webhook the edge stack's secret bluegreen:webhookUrl names, as the operator's
    `notify`: read (that secret alone decrypted) by `load`, or else when there is first news to
    tell, so a rollback moves the traffic before it decrypts anything. Nothing when unset."""

    def __init__(self, ws: Workspace, stack: str) -> None:
        self.ws, self.stack = ws, stack
        self.hook: Webhook | None = None
        self.loaded = False

    def load(self) -> None:
        """Read and check the URL; `BadUrl` says what is wrong with it."""
        if self.loaded:
            return
        self.loaded = True
        values = self.ws.file_config(self.stack)
        if KEY not in values:
            return
        if values[KEY] != SECRET:
            _warn(
                f"bluegreen: warning: {KEY} is in Pulumi.{self.stack}.yaml in plain "
                f"text; keep it a secret: pulumi config set --secret --stack {self.stack} "
                f"{KEY} <url>"
            )
        url = self.ws.config_get(self.stack, KEY)
        if url:
            self.hook = Webhook(checked(url, self.stack), self.stack, warn=_warn)

    def __call__(self, command: str, phase: str, fields: dict) -> None:
        try:
            self.load()
        except BadUrl as err:
            _warn(f"bluegreen: warning: nobody was told: {err}")
        if self.hook:
            self.hook(command, phase, fields)

    def close(self) -> None:
        if self.hook:
            self.hook.close(WAIT_S)  # bounded: a hung webhook does not keep the command


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
