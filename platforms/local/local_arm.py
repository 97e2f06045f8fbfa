"""The local arm: app/server.py as a process on loopback.

With bluegreen:schemaRevision the arm serves the data stack's database: its DSN (a secret) goes
to the app in an owner-only file in the run dir (`--dsn-file`, never on the command line) with
the shape of the items table its revision has (`--items-shape`). A new DSN (a new password, port
or database) restarts the app, which reads the file once: the process's environment carries a
fingerprint of it (the app takes SIGHUP, the files' reload signal, as "get slow")."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from bluegreen import probe
from bluegreen.config import ArmSettings
from bluegreen.reader import VERSION, Reader
from platforms.base import ArmEndpoint, ArmPlatform, DataLink
from platforms.local.loopback import ROOT, read_bind_address, refuse_taken
from platforms.local.process import Process

APP = os.path.join(ROOT, "app", "server.py")

_SIMULATE = {
    "ready-status": r"[1-5][0-9][0-9]",
    "delay-ms": r"[0-9]{1,5}(\.[0-9]+)?",
    "error-rate": r"0(\.[0-9]+)?|1(\.0+)?",
    # Report a version other than the pinned one, as an arm restarted by hand on another build.
    "serve-version": VERSION.pattern,
}


def _simulate(read: Reader) -> dict[str, str]:
    """bluegreen:simulate, `ready-status=500,delay-ms=40,error-rate=0.02` (any subset)."""
    raw = read.optional("simulate") or ""
    faults: dict[str, str] = {}
    for item in filter(None, raw.split(",")):
        name, _, value = item.strip().partition("=")
        if name not in _SIMULATE or not re.fullmatch(_SIMULATE[name], value):
            read.problem(
                "simulate",
                raw,
                "comma-separated ready-status=<HTTP status>, delay-ms=<ms>, "
                "error-rate=<0..1>, serve-version=<version>",
            )
            return {}
        faults[name] = value
    return faults


@dataclass(frozen=True)
class LocalArm(ArmPlatform):
    """The arm's service: app/server.py as a process on loopback."""

    bind_address: str
    port: int
    """The port the arm's service listens on: its direct endpoint."""
    simulate: Mapping[str, str]
    """Faults the reference service injects on purpose (tests, demos)."""

    @classmethod
    def from_config(cls, read: Reader) -> LocalArm:
        where = f' for arm stack "{read.stack}": the local platform needs a port'
        raw = read.required("port", where)
        return cls(
            bind_address=read_bind_address(read),
            port=read.port("port", raw) if raw else 0,
            simulate=_simulate(read),
        )

    @property
    def app_args(self) -> list[str]:
        flags = {"serve-version": "version"}
        return [f"--{flags.get(k, k)}={v}" for k, v in sorted(self.simulate.items())]

    def preflight(self, s: ArmSettings) -> None:
        answer = probe.readiness(f"http://{self.bind_address}:{self.port}", s.health_path, 1)
        refuse_taken(self.bind_address, self.port, "port", ours=answer.color == s.color)

    def arm(
        self, name: str, parent: pulumi.Resource, s: ArmSettings, data: DataLink | None = None
    ) -> ArmEndpoint:
        host, port = self.bind_address, self.port
        endpoint = f"http://{host}:{port}"
        argv = [
            sys.executable,
            "-u",
            APP,
            f"--color={s.color}",
            f"--version={s.version}",
            f"--host={host}",
            f"--port={port}",
            f"--health-path={s.health_path}",
            *self.app_args,
        ]
        env: pulumi.Input[dict] = {"PYTHONUNBUFFERED": "1"}
        with_data: dict[str, Any] = {}
        if data is not None:
            dsn_file = os.path.join(s.run_dir, f"{s.color}.dsn")
            argv += [f"--dsn-file={dsn_file}", f"--items-shape={data.items_shape}"]
            with_data["files"] = {dsn_file: data.dsn}
            env = data.dsn.apply(
                lambda dsn: {
                    "PYTHONUNBUFFERED": "1",
                    "BLUEGREEN_DSN_FINGERPRINT": hashlib.sha256(dsn.encode()).hexdigest()[:16],
                }
            )
        service = Process(
            f"{name}-service",
            {
                "name": f"{s.app_name}-{s.color}",
                "argv": argv,
                "cwd": s.run_dir,
                "env": env,
                **with_data,
                "bind": host,
                "port": port,
                "portKey": "bluegreen:port",
                "healthUrl": endpoint + s.health_path,
                "logPath": os.path.join(s.run_dir, f"{s.color}.log"),
                "pidPath": os.path.join(s.run_dir, f"{s.color}.pid"),
            },
            pulumi.ResourceOptions(parent=parent),
        )
        return ArmEndpoint(
            endpoint=service.pid.apply(lambda _: endpoint),
            nodes=service.pid.apply(lambda _: [f"{host}:{port}"]),
        )
