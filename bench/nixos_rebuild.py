"""The stand-in for `nixos-rebuild switch` on the loopback nodes of bench/nixos_hosts.py, run on a
node over ssh as `python -m bench.nixos_hosts switch`: what the modules would make systemd do,
without building anything.

For an arm file, (re)start the app at the rendered colour, version, port and health path, bound to
the node's address (not 0.0.0.0: the nodes share one machine), and only when those changed; for
the edge file, write nginx's config from the rendered servers (reloading it, SIGHUP, only when that
changed, as NixOS does) and the switch state from the pointer, weights and generation; for the
file `pulumi destroy` leaves, stop what the file ran.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

from bluegreen import nginx, nginx_conf
from bluegreen.config import Backpressure, Cache, Maintenance, Shadow
from platforms.local.edge_files import write_state
from platforms.local.nginx_binary import js_module

# The stand-in `nixos-rebuild` imports only bench.nixos_hosts, this module and bluegreen.nginx: a
# switch here should cost what the deploy's own steps cost, not a Pulumi SDK import.
REMOTE_ETC = "/etc/nixos"


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stop_process(pid: int, marker: str, timeout: float = 5) -> bool:
    """SIGTERM `pid` if its command line holds `marker` (so a recycled pid is left alone), then
    SIGKILL; whether it is gone."""
    if marker not in _cmdline(pid):
        return True
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while marker in _cmdline(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if marker in _cmdline(pid):
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    return marker not in _cmdline(pid)


_ARM = {
    k: re.compile(rf"\b{k} = \"?([^\";]+)\"?;") for k in ("color", "version", "port", "healthPath")
}
_EDGE = {
    k: re.compile(rf"\b{k} = \"?([^\";]+)\"?;")
    for k in ("activeColor", "port", "generation", "configGeneration", "upstreamPrefix")
}
_SERVER = re.compile(r'\{ address = "([^"]+)"; color = "([^"]+)"; \}')
_BY_COLOR = {
    k: re.compile(rf"\b{k} = \{{ blue = \"?([^\";]+)\"?; green = \"?([^\";]+)\"?; \}};")
    for k in ("weights", "versions")
}


def running_unit(pid_file: str) -> tuple[int, list[str]] | None:
    try:
        with open(pid_file) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None
    return (saved["pid"], saved["argv"]) if _cmdline(saved["pid"]) else None


def _switch_arm(node: str, root: str, name: str, text: str) -> None:
    values = {k: p.search(text).group(1) for k, p in _ARM.items()}
    app = os.path.join(root, REMOTE_ETC.lstrip("/"), "bluegreen", "app", "server.py")
    argv = [
        sys.executable,
        "-u",
        app,
        f"--color={values['color']}",
        f"--version={values['version']}",
        f"--host={node}",
        f"--port={values['port']}",
        f"--health-path={values['healthPath']}",
    ]
    pid_file = os.path.join(root, "run", f"{name}.pid")
    running = running_unit(pid_file)
    if running and running[1] == argv:
        return  # unchanged unit: systemd leaves it running
    if running:
        stop_process(running[0], root)
    log = open(os.path.join(root, "run", f"{name}.log"), "ab")
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    with open(pid_file, "w") as f:
        json.dump({"pid": proc.pid, "argv": argv}, f)


def _switch_edge(node: str, root: str, name: str, text: str) -> None:
    """What the edge module makes NixOS do: nginx.conf from the structural options (reloaded only
    when it changed), and the switch state /etc/bluegreen-edge/switch.json from the others (no
    reload: nginx reads it per request). Only what the benches set is read: the nodes, the
    pointer, the weights and versions; the cache, shadow traffic and limits stay off."""
    values = {k: p.search(text).group(1) for k, p in _EDGE.items()}
    by_color = {
        k: dict(zip(("blue", "green"), p.search(text).groups(), strict=True))
        for k, p in _BY_COLOR.items()
    }
    nodes: dict[str, list[str]] = {}
    for address, color in _SERVER.findall(text):
        nodes.setdefault(color, []).append(address)
    run_dir = os.path.join(root, "run", "nginx")
    for sub in ("tmp", "logs"):
        os.makedirs(os.path.join(run_dir, sub), exist_ok=True)
    off = {
        "cache": Cache(False, 1, ()),
        "shadow": Shadow(0, False),
        "backpressure": Backpressure(0, 0, 0, 1, "always", 1),
    }
    conf = nginx_conf.render_local(
        app=values["upstreamPrefix"].removeprefix("bluegreen_").replace("_", "-"),
        run_dir=run_dir,
        listen=f"{node}:{values['port']}",
        nodes=nodes,
        js_module=js_module(),
        as_root=os.geteuid() == 0,
        **off,
    )
    # The module's config fingerprint and state generation are the ones the platform rendered.
    conf = re.sub(
        r'(map \$pid \$bluegreen_conf \{ default ")[^"]*"',
        rf'\g<1>{values["configGeneration"]}"',
        conf,
    )
    state = nginx.switch_state(
        conf_generation=values["configGeneration"],
        active=values["activeColor"],
        weights={c: int(w) for c, w in by_color["weights"].items()},
        sticky=False,
        versions=by_color["versions"],
        maintenance=Maintenance(False, 503, 30, ""),
        limits_until=None,
        lease=nginx.Lease(1, time.time(), 0),
        probe_token=nginx.probe_token(values.get("probeToken")),
        **off,
    )
    write_state(run_dir, {**state, "generation": values["generation"]})
    with open(os.path.join(run_dir, "switch.js"), "w") as f:
        f.write(nginx.SWITCH_JS)
    path = os.path.join(run_dir, "nginx.conf")
    try:
        with open(path) as f:
            unchanged = f.read() == conf
    except OSError:
        unchanged = False
    pid_file = os.path.join(root, "run", f"{name}.pid")
    running = running_unit(pid_file)
    if running and unchanged:
        return  # the switch state alone changed: nginx is not reloaded
    with open(path + ".next", "w") as f:
        f.write(conf)
    os.replace(path + ".next", path)
    if running:
        os.kill(running[0], signal.SIGHUP)
        return
    subprocess.run(["nginx", "-p", run_dir, "-c", path], check=True, capture_output=True)
    with open(os.path.join(run_dir, "nginx.pid")) as f:
        pid = int(f.read().strip())
    with open(pid_file, "w") as f:
        json.dump({"pid": pid, "argv": []}, f)


def switch(action: str) -> int:
    if action != "switch":
        print(
            f"nixos-rebuild stand-in: only `switch` is supported, not {action!r}", file=sys.stderr
        )
        return 2
    node, root = os.environ["BLUEGREEN_NODE"], os.environ["BLUEGREEN_NODE_ROOT"]
    for path in sorted(glob.glob(os.path.join(root, REMOTE_ETC.lstrip("/"), "bluegreen", "*.nix"))):
        name = os.path.basename(path)[: -len(".nix")]
        with open(path) as f:
            text = f.read()
        if "services.bluegreen-arm" in text:
            _switch_arm(node, root, name, text)
        elif "services.bluegreen-edge" in text:
            _switch_edge(node, root, name, text)
        else:  # the module `pulumi destroy` leaves declares nothing: stop what it ran
            running = running_unit(os.path.join(root, "run", f"{name}.pid"))
            if running:
                stop_process(running[0], root)
    return 0
