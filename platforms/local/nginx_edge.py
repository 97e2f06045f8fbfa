"""The local edge: a real nginx on loopback whose upstream is the traffic switch.

An update is only reported successful once traffic really moved. nginx can accept `-s reload`
and keep serving the old config (a port already in use is one way), so after the swap the edge is
probed until it answers from the new config's generation and the expected colour; otherwise the
previous config is put back, nginx reloads it, and the update fails with what was seen.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from bluegreen import nginx, probe
from bluegreen.config import Maintenance
from platforms.local.process import daemon_pid, port_in_use, start_ticks

_OUTPUTS = ("generation", "confirmedAfterMs", "masterPid")


class FlipError(RuntimeError):
    """The edge refused or could not complete a change; what was serving before still serves."""


def _nginx() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)),
        None,
    )
    if not found:
        raise FlipError(
            "nginx is not installed: run scripts/bootstrap (it installs Debian's nginx-light)"
        )
    return found


def _paths(run_dir: str) -> dict[str, str]:
    return {
        "conf": os.path.join(run_dir, "nginx.conf"),
        "next": os.path.join(run_dir, "nginx.conf.next"),
        "prev": os.path.join(run_dir, "nginx.conf.prev"),
        "pid": os.path.join(run_dir, "nginx.pid"),
        "error_log": os.path.join(run_dir, "error.log"),
    }


def master_pid(run_dir: str) -> int | None:
    """The pid of *our* nginx master: the pid file's process, if it runs our config."""
    paths = _paths(run_dir)
    return daemon_pid(paths["pid"], paths["conf"])


def listens_on(run_dir: str) -> str | None:
    """The host:port our running nginx (if any) listens on, read from the config it serves."""
    if master_pid(run_dir) is None:
        return None
    try:
        with open(_paths(run_dir)["conf"]) as f:
            for line in f:
                words = line.split()
                if words[:1] == ["listen"]:
                    return words[1].rstrip(";")
    except OSError:
        pass
    return None


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).strip() or "(empty)"
    except OSError:
        return "(no error log)"


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


class EdgeProvider(ResourceProvider):
    serialize_as_secret_always = False

    def _apply(self, props: dict[str, Any]) -> dict[str, Any]:
        run_dir, active = props["runDir"], props["activeColor"]
        paths = _paths(run_dir)
        servers = [
            nginx.Server(s["address"], s["color"], int(s["weight"])) for s in props["servers"]
        ]
        target_colors = sorted({s.color for s in servers if s.weight > 0})
        m = props["maintenance"]

        # The arms about to take traffic must answer before nginx is touched.
        for color in target_colors:
            arm = props["arms"][color]
            answer = probe.readiness(arm["endpoint"], props["healthPath"])
            if answer.status != 200:
                raise FlipError(
                    f"Switch to {color} refused: the {color} arm is not ready "
                    f"({answer.describe()}). Nothing was changed; the edge keeps its current arm. "
                    f"Deploy a healthy {color} (pulumi up -s {color}) "
                    "or keep the other colour live."
                )

        text = nginx.render_local(
            app=props["app"],
            run_dir=run_dir,
            listen=props["listen"],
            servers=servers,
            active_color=active,
            sticky=bool(props.get("sticky")),
            maintenance=Maintenance(
                enabled=bool(m["enabled"]),
                status=int(m["status"]),
                retry_after_s=int(m["retryAfter"]),
                banner=m["banner"],
            ),
        )
        gen = text.split('X-Bluegreen-Edge-Generation "', 1)[1].split('"', 1)[0]
        for sub in ("tmp", "logs"):
            os.makedirs(os.path.join(run_dir, sub), exist_ok=True)
        with open(paths["next"], "w") as f:
            f.write(text)
        check = _run([_nginx(), "-t", "-q", "-p", run_dir, "-c", paths["next"]])
        if check.returncode != 0:
            raise FlipError(
                f"nginx rejected the rendered config (nothing was changed):\n{check.stderr.strip()}"
            )

        pid = master_pid(run_dir)
        if pid is None:
            host, port = props["listen"].rsplit(":", 1)
            if port_in_use(host, int(port)):
                raise FlipError(
                    f"bluegreen:edgePort {port} is already in use on {host} by another process; "
                    "choose a free port for the edge in Pulumi.live.yaml (nothing was started)"
                )
            os.replace(paths["next"], paths["conf"])
            started = _run([_nginx(), "-p", run_dir, "-c", paths["conf"]])
            if started.returncode != 0:
                raise FlipError(f"nginx did not start:\n{started.stderr.strip()}")
        else:
            if os.path.exists(paths["conf"]):
                shutil.copyfile(paths["conf"], paths["prev"])
            os.replace(
                paths["next"], paths["conf"]
            )  # atomic: nginx never reads a half-written file
            os.kill(pid, signal.SIGHUP)  # graceful: old workers finish what they are serving

        expected = active if len(target_colors) == 1 else None
        edge_url = f"http://{props['listen']}/"

        def serving(a: probe.Answer) -> bool:
            return (
                a.headers.get("x-bluegreen-edge-generation") == gen
                and a.status is not None
                and (expected is None or a.color == expected)
            )

        # nginx applies a reload within milliseconds and a probe is one loopback request: poll
        # often, or the flip waits most of an interval after the new config already answers.
        answer, waited = probe.wait_until(
            edge_url, serving, timeout=float(props["confirmTimeout"]), interval=0.005
        )
        if not serving(answer):
            restored = self._restore(run_dir, pid)
            seen = (
                f"answered from {answer.color or 'no arm'} with config "
                f"{answer.headers.get('x-bluegreen-edge-generation', 'unknown')}"
                if answer.status is not None
                else f"did not answer ({answer.error})"
            )
            raise FlipError(
                f"Switch to {active} not confirmed: after {waited:.1f}s "
                f"the edge at {edge_url} {seen}, "
                f"expected config {gen} serving {expected or 'the canary split'}. {restored} "
                f"nginx error log ends with:\n{_tail(paths['error_log'])}"
            )
        return {
            **props,
            "generation": gen,
            "confirmedAfterMs": round(waited * 1000, 1),
            "masterPid": master_pid(run_dir),
        }

    def _restore(self, run_dir: str, pid: int | None) -> str:
        paths = _paths(run_dir)
        if pid is None:  # we started nginx for this change: stop it again
            new_pid = master_pid(run_dir)
            if new_pid:
                os.kill(new_pid, signal.SIGQUIT)
            return "The edge was not started."
        if os.path.exists(paths["prev"]):
            os.replace(paths["prev"], paths["conf"])
            os.kill(pid, signal.SIGHUP)
        return "The previous config was restored and keeps serving."

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"edge:{props['listen']}", outs=self._apply(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._apply(news))

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
        """What nginx really serves: after an interrupted update the config on disk (and so the
        live colour and generation) may differ from the state, and a refresh must show it."""
        if master_pid(props["runDir"]) is None:
            return ReadResult(id_=None, outs={})
        try:
            with open(_paths(props["runDir"])["conf"]) as f:
                text = f.read()
        except OSError:
            return ReadResult(id_=None, outs={})
        serving = dict(props)
        for header, key in (
            ("X-Bluegreen-Edge", "activeColor"),
            ("X-Bluegreen-Edge-Generation", "generation"),
        ):
            marker = f'add_header {header} "'
            if marker in text:
                serving[key] = text.split(marker, 1)[1].split('"', 1)[0]
        return ReadResult(id_=id_, outs=serving)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        pid = master_pid(props["runDir"])
        if pid is None:
            return
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
        super().__init__(EdgeProvider(), name, {**props, **dict.fromkeys(_OUTPUTS)}, opts)
