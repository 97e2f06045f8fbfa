"""The local edge: a real nginx on loopback, the traffic switch.

Moving traffic needs no reload. nginx.conf holds what is structural (the port, one upstream group
per colour, the features that are on); which colour a request goes to, maintenance and the
limits are in `switch.json`, which the njs module (bluegreen/nginx_text/switch.js) reads per
request and this provider replaces atomically. A reload closes kept-alive connections, and a
client that sends on one as it closes gets a reset; replacing a file closes nothing. Only a
structural change reloads nginx, gracefully.

An update is only reported successful once traffic really moved: the edge is probed until it
answers with the new state's generation from the expected colour; otherwise the previous state
(and config) is put back and the update fails with what was seen. `EdgeProvider._apply` reads as
those steps: gate, render, put in place, confirm, restore. The edge's files are edge_files.py's,
the nginx binary nginx_binary.py's.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from typing import Any, NoReturn

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from bluegreen import probe
from platforms.local.edge_change import Applied, Change, put_in_place, render, restore
from platforms.local.edge_files import master_pid, paths, read_state, served, tail
from platforms.local.nginx_binary import NO_JS, FlipError, js_module
from platforms.local.process import start_ticks

_OUTPUTS = (
    "generation",
    "confirmedAfterMs",
    "masterPid",
    "reloaded",
    "limitsUntil",
    "cacheWarm",
    "lease",
    "probeToken",
)


class EdgeProvider(ResourceProvider):
    serialize_as_secret_always = False

    def _apply(self, props: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any]:
        module = self._gate(props)
        change = render(props, olds, module)
        applied = put_in_place(props, olds, change)
        answer, waited = self._confirm(props, change)
        if not change.serves(answer):
            self._fail(props, change, applied, answer, waited)
        return {
            **props,
            "generation": change.state["generation"],
            "confirmedAfterMs": round(waited * 1000, 1),
            "masterPid": master_pid(change.run_dir),
            "reloaded": applied.reloaded,
            "limitsUntil": change.limits_until,
            "cacheWarm": applied.warmed,
            "lease": change.state["lease"],
            "probeToken": change.state["probe"],
        }

    def _gate(self, props: dict[str, Any]) -> str:
        """The arms about to take traffic must answer before nginx is touched, and the njs
        module must be there; its path."""
        for color in sorted(c for c, w in props["weights"].items() if int(w) > 0):
            arm = props["arms"][color]
            answer = probe.readiness(arm["endpoint"], props["healthPath"])
            if answer.status != 200:
                raise FlipError(
                    f"Switch to {color} refused: the {color} arm is not ready "
                    f"({answer.describe()}). Nothing was changed; the edge keeps its current arm. "
                    f"Deploy a healthy {color} (pulumi up -s {color}) "
                    "or keep the other colour live."
                )
        module = js_module()
        if module is None:
            raise FlipError(NO_JS + " (nothing was changed)")
        return module

    def _confirm(self, props: dict[str, Any], change: Change) -> tuple[probe.Answer, float]:
        """Probe the edge until it answers from `change` or the confirmation times out: the last
        answer, and how long it took."""
        # The state is read per request, and a reload applies within milliseconds: poll often,
        # or the flip waits most of an interval after the new state already answers.
        return probe.wait_until(
            f"http://{props['listen']}/",
            change.serves,
            timeout=float(props["confirmTimeout"]),
            interval=0.005,
            token=change.state["probe"],
        )

    def _fail(
        self,
        props: dict[str, Any],
        change: Change,
        applied: Applied,
        answer: probe.Answer,
        waited: float,
    ) -> NoReturn:
        """The change did not confirm: put back what served before, and fail with what was
        seen."""
        restored = restore(change, applied)
        seen = (
            f"answered from {answer.color or 'no arm'} with config "
            f"{answer.headers.get('x-bluegreen-edge-generation', 'unknown')}"
            if answer.status is not None
            else f"did not answer ({answer.error})"
        )
        raise FlipError(
            f"Switch to {change.active} not confirmed: after {waited:.1f}s "
            f"the edge at http://{props['listen']}/ {seen}, "
            f"expected config {change.state['generation']} serving "
            f"{change.expected or 'the canary split'}. {restored} "
            f"nginx error log ends with:\n{tail(paths(change.run_dir)['error_log'])}"
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"edge:{props['listen']}", outs=self._apply(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._apply(news, olds))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [
            k
            for k, v in news.items()
            if k not in _OUTPUTS and k != "__provider" and olds.get(k) != v
        ]
        if master_pid(news["runDir"]) is None:
            changed.append("masterPid")  # nginx is down: `pulumi up` starts it again
        replaces = [k for k in ("runDir", "listen") if k in changed]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """What nginx really serves: after an interrupted update the switch state on disk (and so
        the live colour, the weights and the generation) may differ from Pulumi's state, and a
        refresh must show it."""
        if master_pid(props["runDir"]) is None:
            return ReadResult(id_=None, outs={})
        state = read_state(props["runDir"])
        if state is None:
            return ReadResult(id_=None, outs={})
        serving = {
            **props,
            "activeColor": state.get("active"),
            "weights": state.get("weights"),
            "generation": state.get("generation"),
        }
        return ReadResult(id_=id_, outs=serving)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        pid = master_pid(props["runDir"])
        if pid is not None:
            self._stop(pid)
        where = served(props["runDir"])
        if where != props["runDir"]:
            shutil.rmtree(where, ignore_errors=True)

    def _stop(self, pid: int) -> None:
        ticks = start_ticks(pid)
        os.kill(pid, signal.SIGQUIT)  # graceful shutdown: in-flight requests complete
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and start_ticks(pid) == ticks:
            time.sleep(0.02)
        if start_ticks(pid) == ticks:
            os.kill(pid, signal.SIGKILL)


class NginxEdge(Resource, module="local", name="NginxEdge"):
    """nginx on loopback, configured as the blue/green traffic switch."""

    generation: pulumi.Output[str]
    confirmedAfterMs: pulumi.Output[float]

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ):
        # The probe token lets its holder pass the edge's limits: a secret in the state too.
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["probeToken"])
        )
        super().__init__(EdgeProvider(), name, {**props, **dict.fromkeys(_OUTPUTS)}, opts)
