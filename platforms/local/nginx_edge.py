"""The local edge: a real nginx on loopback, the traffic switch.

Moving traffic needs no reload. nginx.conf holds what is structural (the port, one upstream group
per colour, the features that are on); which colour a request goes to, maintenance and the
limits are in `switch.json`, which the njs module (bluegreen/nginx_text/switch.js) reads per
request and this provider replaces atomically. A reload closes kept-alive connections, and a
client that sends on one as it closes gets a reset; replacing a file closes nothing. Only a
structural change reloads nginx, gracefully.

An update is only reported successful once traffic really moved: the edge is probed until it
answers with the new state's generation from the expected colour; otherwise the previous state
(and config) is put back and the update fails with what was seen.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import re
import secrets
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
from platforms.local.process import daemon_pid, port_in_use, start_ticks

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

# Debian's libnginx-mod-http-js puts the module here; other builds of nginx elsewhere.
JS_MODULES = (
    "/usr/lib/nginx/modules/ngx_http_js_module.so",
    "/usr/lib64/nginx/modules/ngx_http_js_module.so",
    "/usr/local/nginx/modules/ngx_http_js_module.so",
    "/etc/nginx/modules/ngx_http_js_module.so",
)


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


def nginx_version() -> tuple[int, ...]:
    """The version of the nginx on PATH, e.g. (1, 22, 1); () if it cannot tell."""
    out = _run([_nginx(), "-v"]).stderr
    found = re.search(r"nginx/([0-9]+(?:\.[0-9]+)*)", out)
    return tuple(int(p) for p in found.group(1).split(".")) if found else ()


def js_module() -> str | None:
    """The nginx njs module, which the switch needs to move traffic without a reload."""
    return next((p for p in JS_MODULES if os.path.exists(p)), None)


NO_JS = (
    "the nginx njs module (ngx_http_js_module.so) is not installed: run scripts/bootstrap "
    "(it installs Debian's libnginx-mod-http-js); the local edge moves traffic with it, "
    "without reloading nginx"
)


def _paths(run_dir: str) -> dict[str, str]:
    return {
        "conf": os.path.join(run_dir, "nginx.conf"),
        "next": os.path.join(run_dir, "nginx.conf.next"),
        "prev": os.path.join(run_dir, "nginx.conf.prev"),
        "state": os.path.join(served(run_dir), "switch.json"),
        "js": os.path.join(run_dir, "switch.js"),
        "pid": os.path.join(run_dir, "nginx.pid"),
        "error_log": os.path.join(run_dir, "error.log"),
        "token": os.path.join(run_dir, PROBE_TOKEN_FILE),
    }


PROBE_TOKEN_FILE = "probe.token"
"""The edge's probe token (`nginx.probe_token`), owner-only in the run directory, for bluegreen's
own processes on this host (the queue service's `--probe-token-file`)."""


def write_token(run_dir: str, token: str) -> None:
    """Write the probe token where this host's bluegreen processes read it: created 0600 (never
    readable by others, not even for a moment), replaced atomically."""
    path = _paths(run_dir)["token"]
    try:
        with open(path) as f:
            if f.read().strip() == token:
                return
    except OSError:
        pass
    fd = os.open(path + ".next", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older .next, created by anyone, keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(path + ".next", path)


def _token(run_dir: str) -> str | None:
    try:
        with open(_paths(run_dir)["token"]) as f:
            return f.read().strip()
    except OSError:
        return None


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


def read_state(run_dir: str) -> dict | None:
    """The switch state nginx reads per request, or None."""
    try:
        with open(_paths(run_dir)["state"]) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def served(run_dir: str) -> str:
    """`nginx.served_dir` of the nginx this process runs: what its workers read and write."""
    return nginx.served_dir(run_dir, os.geteuid() == 0)


def make_served(run_dir: str) -> str:
    """Lay out `served` (with `tmp`, in which nginx makes its temp dirs, owned by the workers)
    and return it. Outside the run dir it is root's and its workers' group's only, and the run
    dir's switch.json points at the state in it, for whoever reads it there."""
    where = served(run_dir)
    parts = (where, os.path.join(where, "tmp"), os.path.join(where, nginx.LEASE_DIR))
    if where == run_dir:
        for path in parts:
            os.makedirs(path, exist_ok=True)
        return where
    os.makedirs(nginx.SERVED_ROOT, mode=0o755, exist_ok=True)
    group = grp.getgrnam(nginx.worker_user()[1]).gr_gid
    for path in parts:
        os.makedirs(path, exist_ok=True)
        os.chown(path, 0, group)
        os.chmod(path, 0o750)
    link, target = os.path.join(run_dir, "switch.json"), os.path.join(where, "switch.json")
    if not (os.path.islink(link) and os.readlink(link) == target):
        os.makedirs(run_dir, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(link + ".next")
        os.symlink(target, link + ".next")
        os.replace(link + ".next", link)
    return where


def write_state(run_dir: str, state: dict) -> None:
    """Replace the switch state atomically: a request reads the old file or the new one."""
    where = make_served(run_dir)
    path = os.path.join(where, "switch.json")
    with open(path + ".next", "w") as f:
        if where != run_dir:  # the workers' user reads it; its directory keeps others out
            os.fchmod(f.fileno(), 0o644)
        json.dump({**state, "writtenAt": time.time()}, f, sort_keys=True)
    os.replace(path + ".next", path)
    if state.get("lease"):
        _stamp(run_dir, int(state["lease"]["fence"]))


def _stamp(run_dir: str, fence: int) -> None:
    """Stamp when the edge began serving `fence` (switch.js serves it as the lease's `since`):
    just after the state is in place, never before, and only for a new fence, so a weight or
    maintenance change keeps the holder's writers running. The other fences' stamps go: a fence
    served again (by hand) starts its handover afresh."""
    folder = os.path.join(served(run_dir), nginx.LEASE_DIR)
    name = nginx.LEASE_STAMP.format(fence=fence)
    try:
        with open(os.path.join(folder, name), "x"):
            pass
    except FileExistsError:
        return
    for other in os.listdir(folder):
        if other != name:
            os.remove(os.path.join(folder, other))


def _write_if_changed(path: str, text: str) -> None:
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except OSError:
        pass
    with open(path + ".next", "w") as f:
        f.write(text)
    os.replace(path + ".next", path)


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

    def _apply(self, props: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any]:
        run_dir, active = props["runDir"], props["activeColor"]
        paths = _paths(run_dir)
        weights = {c: int(w) for c, w in props["weights"].items()}
        target_colors = sorted(c for c, w in weights.items() if w > 0)
        features = nginx.Features.from_props(props)
        cache, shadow, backpressure = features.cache, features.shadow, features.backpressure

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
        module = js_module()
        if module is None:
            raise FlipError(NO_JS + " (nothing was changed)")

        text = nginx.render_local(
            app=props["app"],
            run_dir=run_dir,
            listen=props["listen"],
            nodes=props["nodes"],
            js_module=module,
            cache=cache,
            shadow=shadow,
            backpressure=backpressure,
            queue=features.maintenance.queue,
            queue_listen=props.get("queueListen") or "",
            as_root=os.geteuid() == 0,
            safe_reload=nginx_version() >= nginx.SAFE_RELOAD_SINCE,
        )
        moved = olds is None or olds.get("weights") != props["weights"]
        until = (olds or {}).get("limitsUntil")
        if backpressure.enabled and backpressure.when == "hold" and moved:
            until = round(time.time() + backpressure.hold_s, 3)
        previous = read_state(run_dir)
        # The fence only grows: from the state nginx serves, or this resource's own record of it
        # when that file is gone.
        known = [x for x in ((previous or {}).get("lease"), (olds or {}).get("lease")) if x]
        lease = nginx.Lease.next(
            max(known, key=lambda x: int(x["fence"])) if known else None,
            active,
            int(props["handover"]),
            time.time(),
        )
        state = nginx.switch_state(
            conf_generation=nginx.conf_generation(text),
            active=active,
            weights=weights,
            sticky=bool(props.get("sticky")),
            versions={c: a["version"] for c, a in props["arms"].items()},
            maintenance=features.maintenance,
            shadow=shadow,
            backpressure=backpressure,
            limits_until=until,
            lease=lease,
            # One per edge, kept across updates: from the state nginx serves, this resource's
            # record of it, or the file the queue service reads, whichever is still there.
            probe_token=nginx.probe_token(
                (previous or {}).get("probe"), (olds or {}).get("probeToken"), _token(run_dir)
            ),
        )
        token = state["probe"]
        gen = state["generation"]
        os.makedirs(os.path.join(run_dir, "logs"), exist_ok=True)
        make_served(run_dir)
        _write_if_changed(paths["js"], nginx.SWITCH_JS)
        write_token(run_dir, token)

        pid = master_pid(run_dir)
        reloaded = False
        if pid is None:
            host, port = props["listen"].rsplit(":", 1)
            if port_in_use(host, int(port)):
                raise FlipError(
                    f"bluegreen:edgePort {port} is already in use on {host} by another process; "
                    "choose a free port for the edge in Pulumi.live.yaml (nothing was started)"
                )
            self._check(text, run_dir)
            write_state(run_dir, state)
            os.replace(paths["next"], paths["conf"])
            started = _run([_nginx(), "-p", run_dir, "-c", paths["conf"]])
            if started.returncode != 0:
                raise FlipError(f"nginx did not start:\n{started.stderr.strip()}")
        else:
            try:
                with open(paths["conf"]) as f:
                    structural = f.read() != text
            except OSError:
                structural = True
            if structural:
                # Ports, the arms' nodes or the features that are on changed: this needs a
                # reload. Graceful: old workers finish what they are serving.
                self._check(text, run_dir)
                if os.path.exists(paths["conf"]):
                    shutil.copyfile(paths["conf"], paths["prev"])
                os.replace(paths["next"], paths["conf"])  # atomic: never half-written
                os.kill(pid, signal.SIGHUP)
                reloaded = True
        warmed = self._warm(props, previous, weights, olds, token) if pid is not None else {}
        write_state(run_dir, state)

        expected = active if len(target_colors) == 1 else None
        edge_url = f"http://{props['listen']}/"

        def serving(a: probe.Answer) -> bool:
            return (
                a.headers.get("x-bluegreen-edge-generation") == gen
                and a.status is not None
                and (expected is None or a.color == expected)
            )

        # The state is read per request, and a reload applies within milliseconds: poll often,
        # or the flip waits most of an interval after the new state already answers.
        answer, waited = probe.wait_until(
            edge_url, serving, timeout=float(props["confirmTimeout"]), interval=0.005, token=token
        )
        if not serving(answer):
            restored = self._restore(run_dir, pid, previous, reloaded, state)
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
            "reloaded": reloaded,
            "limitsUntil": until,
            "cacheWarm": warmed,
            "lease": state["lease"],
            "probeToken": token,
        }

    def _check(self, text: str, run_dir: str) -> None:
        """Write the config next to the serving one and have nginx test it."""
        paths = _paths(run_dir)
        with open(paths["next"], "w") as f:
            f.write(text)
        check = _run([_nginx(), "-t", "-q", "-p", run_dir, "-c", paths["next"]])
        if check.returncode != 0:
            raise FlipError(
                f"nginx rejected the rendered config (nothing was changed):\n{check.stderr.strip()}"
            )

    def _warm(
        self,
        props: dict[str, Any],
        previous: dict | None,
        weights: dict[str, int],
        olds: dict[str, Any] | None,
        token: str,
    ) -> dict[str, dict[str, int | str]]:
        """Before traffic moves to a colour, fetch the cache's warm paths into its namespace:
        the serving state gains a one-time token, and only requests carrying it reach that
        colour. Users' requests are served as before meanwhile."""
        cache = props["cache"]
        if not (cache["enabled"] and cache["warmPaths"] and previous and olds):
            return {}
        was = {c for c, w in (olds.get("weights") or {}).items() if int(w) > 0}
        arriving = sorted(c for c, w in weights.items() if w > 0 and c not in was)
        warmed: dict[str, dict[str, int | str]] = {}
        for color in arriving:
            # The probe token too: only bluegreen's own requests are routed by the warm token,
            # and the state served so far may predate the edge's token.
            warm = {"color": color, "token": secrets.token_hex(16)}
            write_state(props["runDir"], {**previous, "probe": token, "warm": warm})
            warmed[color] = {}
            for path in cache["warmPaths"]:
                answer = probe.request(
                    f"http://{props['listen']}{path}",
                    headers={probe.WARM_HEADER: warm["token"], probe.PROBE_HEADER: token},
                )
                warmed[color][path] = answer.status if answer.status is not None else answer.error
        write_state(props["runDir"], previous)
        return warmed

    def _restore(
        self, run_dir: str, pid: int | None, previous: dict | None, reloaded: bool, failed: dict
    ) -> str:
        paths = _paths(run_dir)
        if pid is None:  # we started nginx for this change: stop it again
            new_pid = master_pid(run_dir)
            if new_pid:
                os.kill(new_pid, signal.SIGQUIT)
            return "The edge was not started."
        if previous is not None:
            # The failed state's fence may have been served: the fence never goes down.
            write_state(run_dir, nginx.restored(previous, failed, time.time()))
        if reloaded and os.path.exists(paths["prev"]):
            os.replace(paths["prev"], paths["conf"])
            os.kill(pid, signal.SIGHUP)
            return "The previous state and config were restored and keep serving."
        return "The previous state was restored and keeps serving."

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
