"""One change of the local edge, step by step: `render` the config and the switch state to serve
(a `Change`), `put_in_place` (start or reload nginx, warm the cache, serve the state), and
`restore` what served before when the change is not confirmed. The provider
(nginx_edge.py's `EdgeProvider`) gates, runs these steps and confirms."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import time
from dataclasses import dataclass
from typing import Any

from bluegreen import nginx, nginx_conf, probe
from platforms.local.edge_files import (
    make_served,
    master_pid,
    paths,
    read_state,
    read_token,
    write_if_changed,
    write_state,
    write_token,
)
from platforms.local.nginx_binary import FlipError, nginx_binary, nginx_version, run
from platforms.local.process import port_in_use


@dataclass(frozen=True)
class Change:
    """What one apply moves the edge to, from `render` to the steps after it."""

    run_dir: str
    active: str
    weights: dict[str, int]
    text: str
    """The nginx.conf to serve."""
    state: dict[str, Any]
    """The switch state to serve with it (`nginx.switch_state`)."""
    previous: dict | None
    """The switch state nginx served before, if any: what a failed change puts back."""
    limits_until: float | None

    @property
    def expected(self) -> str | None:
        """The colour every answer must come from; None in a canary split."""
        targets = [c for c, w in self.weights.items() if w > 0]
        return self.active if len(targets) == 1 else None

    def serves(self, answer: probe.Answer) -> bool:
        """Whether `answer` comes from this change: its generation, from the expected colour."""
        return (
            answer.headers.get("x-bluegreen-edge-generation") == self.state["generation"]
            and answer.status is not None
            and (self.expected is None or answer.color == self.expected)
        )


@dataclass(frozen=True)
class Applied:
    """How a change was put in place."""

    pid: int | None
    """The nginx master that served before the change; None if the change started nginx."""
    reloaded: bool
    warmed: dict[str, dict[str, int | str]]


def render(props: dict[str, Any], olds: dict[str, Any] | None, module: str) -> Change:
    """The config and the switch state to serve; nothing is written yet."""
    run_dir, active = props["runDir"], props["activeColor"]
    weights = {c: int(w) for c, w in props["weights"].items()}
    features = nginx.Features.from_props(props)
    backpressure = features.backpressure
    text = nginx_conf.render_local(
        app=props["app"],
        run_dir=run_dir,
        listen=props["listen"],
        nodes=props["nodes"],
        js_module=module,
        cache=features.cache,
        shadow=features.shadow,
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
    latest = max(known, key=lambda x: int(x["fence"])) if known else None
    if props.get("siteLease"):  # one of several edges: the lease all of them serve
        lease = nginx.Lease.across_edges(
            props["siteLease"], latest, int(props["handover"]), time.time()
        )
    else:
        lease = nginx.Lease.next(latest, active, int(props["handover"]), time.time())
    state = nginx.switch_state(
        conf_generation=nginx_conf.conf_generation(text),
        active=active,
        weights=weights,
        sticky=bool(props.get("sticky")),
        versions={c: a["version"] for c, a in props["arms"].items()},
        maintenance=features.maintenance,
        shadow=features.shadow,
        backpressure=backpressure,
        limits_until=until,
        lease=lease,
        # One per edge, kept across updates: from the state nginx serves, this resource's
        # record of it, or the file the queue service reads, whichever is still there.
        probe_token=nginx.probe_token(
            (previous or {}).get("probe"), (olds or {}).get("probeToken"), read_token(run_dir)
        ),
    )
    return Change(run_dir, active, weights, text, state, previous, until)


def put_in_place(props: dict[str, Any], olds: dict[str, Any] | None, change: Change) -> Applied:
    """Start nginx with the change, or reload it if the config changed; warm the cache for
    the colours arriving; then serve the new state."""
    run_dir = change.run_dir
    os.makedirs(os.path.join(run_dir, "logs"), exist_ok=True)
    make_served(run_dir)
    write_if_changed(paths(run_dir)["js"], nginx.SWITCH_JS)
    write_token(run_dir, change.state["probe"])

    pid = master_pid(run_dir)
    reloaded = False
    if pid is None:
        _start(props["listen"], change)
    else:
        reloaded = _reload(pid, change)
    warmed = (
        _warm(props, change.previous, change.weights, olds, change.state["probe"])
        if pid is not None
        else {}
    )
    write_state(run_dir, change.state)
    return Applied(pid, reloaded, warmed)


def _start(listen: str, change: Change) -> None:
    """nginx is not running: start it with the change."""
    run_dir, where = change.run_dir, paths(change.run_dir)
    host, port = listen.rsplit(":", 1)
    if port_in_use(host, int(port)):
        raise FlipError(
            f"bluegreen:edgePort {port} is already in use on {host} by another process; "
            "choose a free port for the edge in Pulumi.live.yaml (nothing was started)"
        )
    _check(change.text, run_dir)
    write_state(run_dir, change.state)
    os.replace(where["next"], where["conf"])
    started = run([nginx_binary(), "-p", run_dir, "-c", where["conf"]])
    if started.returncode != 0:
        raise FlipError(f"nginx did not start:\n{started.stderr.strip()}")


def _reload(pid: int, change: Change) -> bool:
    """nginx runs: reload it if the config changed; whether it did."""
    run_dir, where = change.run_dir, paths(change.run_dir)
    try:
        with open(where["conf"]) as f:
            structural = f.read() != change.text
    except OSError:
        structural = True
    if not structural:
        return False
    # Ports, the arms' nodes or the features that are on changed: this needs a
    # reload. Graceful: old workers finish what they are serving.
    _check(change.text, run_dir)
    if os.path.exists(where["conf"]):
        shutil.copyfile(where["conf"], where["prev"])
    os.replace(where["next"], where["conf"])  # atomic: never half-written
    os.kill(pid, signal.SIGHUP)
    return True


def _check(text: str, run_dir: str) -> None:
    """Write the config next to the serving one and have nginx test it."""
    where = paths(run_dir)
    with open(where["next"], "w") as f:
        f.write(text)
    check = run([nginx_binary(), "-t", "-q", "-p", run_dir, "-c", where["next"]])
    if check.returncode != 0:
        raise FlipError(
            f"nginx rejected the rendered config (nothing was changed):\n{check.stderr.strip()}"
        )


def _warm(
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


def restore(change: Change, applied: Applied) -> str:
    """Put back what served before `change`, which was not confirmed; what was put back."""
    run_dir, pid, previous = change.run_dir, applied.pid, change.previous
    where = paths(run_dir)
    if pid is None:  # we started nginx for this change: stop it again
        new_pid = master_pid(run_dir)
        if new_pid:
            os.kill(new_pid, signal.SIGQUIT)
        return "The edge was not started."
    if previous is not None:
        # The failed state's fence may have been served: the fence never goes down.
        write_state(run_dir, nginx.restored(previous, change.state, time.time()))
    if applied.reloaded and os.path.exists(where["prev"]):
        os.replace(where["prev"], where["conf"])
        os.kill(pid, signal.SIGHUP)
        return "The previous state and config were restored and keep serving."
    return "The previous state was restored and keeps serving."
