"""A NixOS host as a Pulumi resource: one rendered node configuration, deployed over SSH.

The deploy, and why it is this one:

1. copy the rendered file to `/etc/nixos/bluegreen/<name>.nix` on the host, with the modules and
   the reference app beside it (`render.BUNDLE`): one `ssh` that unpacks a tar from stdin into a
   staging directory and renames each file into place, so nothing ever reads a half-written
   file. The host's own `configuration.nix` imports `./bluegreen/<name>.nix` once, by hand;
2. run `<bluegreen:nixosRebuild> switch` on the host, over `ssh`.

The machine running `pulumi` needs nothing but an ssh client: no Nix, no nixpkgs, no builder.
The host builds its new system with the nixpkgs its own configuration already uses, so a deploy
can never mix channels, and `switch` is NixOS's own transaction (a failed build changes nothing;
`nixos-rebuild switch --rollback` is there on the host). The alternatives all need Nix where
`pulumi` runs: `nixos-rebuild --target-host` evaluates and builds locally, deploy-rs and colmena
want flakes and a local Nix.

A host is only touched when what it would receive changed: the diff compares a sha256 of the
rendered file and the bundle, so an unchanged `pulumi up` never runs `nixos-rebuild`. After a
switch the resource probes the node (the arm's health path, or the edge until it answers with
the new switch state's generation); if that does not happen in time, the previous files are put
back and switched to, and the update fails saying what was seen.

An arm's file is rendered by the program. The edge's is rendered here (`EdgeHostProvider`), from
the edge's settings: with bluegreen:limitWhen "hold" the switch state says until when the limits
apply, the time of the last change that moved traffic plus bluegreen:limitHoldSeconds, and only
the resource knows its previous weights and that time (its outputs).

The SSH private key is a secret input: it is written to a 0600 file in a private temporary
directory only for the duration of the ssh calls, and never logged. Host keys are accepted on
first contact into `<runDir>/known_hosts` and checked on every later one.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
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
from bluegreen.switch import LEASE_PATH
from platforms.nixos import render

REMOTE_DIR = "/etc/nixos/bluegreen"
# What `pulumi destroy` leaves in the file the host's configuration.nix imports: a module that
# declares nothing, so the host's next rebuild still evaluates and the service is gone.
TOMBSTONE = (
    "# Emptied by `pulumi destroy`; remove the import of this file to drop it.\n{ ... }: { }\n"
)
_REPLACE_ON = ("host", "remoteDir", "fileName")
_TIMEOUT_S = 1800  # a first switch may build the app's closure on the host


class DeployError(RuntimeError):
    """A host could not be brought to its configuration; the message says what it answered."""


@dataclass(frozen=True)
class Target:
    """Where one rendered file goes."""

    host: str
    user: str
    port: int
    known_hosts: str
    """`<runDir>/known_hosts`: the host keys this stack has accepted."""
    remote_dir: str = REMOTE_DIR


def ssh_command(target: Target, key_path: str, remote: str) -> list[str]:
    """The ssh command line that runs `remote` (one shell command) on the target."""
    if any(c.isspace() or c == '"' for c in target.known_hosts + key_path):
        # ssh splits UserKnownHostsFile on whitespace: such a path would silently mean two files.
        raise DeployError(
            f"the ssh files {target.known_hosts!r} and {key_path!r} must have no spaces or quotes "
            "in their paths; choose a bluegreen:runDir without them"
        )
    return [
        "ssh",
        "-i",
        key_path,
        "-p",
        str(int(target.port)),
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        f"UserKnownHostsFile={target.known_hosts}",
        # Never prompt (there is nobody to answer), and offer this key only, not an agent's.
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=15",
        f"{target.user}@{target.host}",
        remote,
    ]


def copy_script(remote_dir: str) -> str:
    """Shell run on the host: unpack the tar on stdin into `remote_dir`, one rename per file."""
    d = shlex.quote(remote_dir)
    return (
        f'set -eu; umask 022; d={d}; mkdir -p "$d"; '
        't=$(mktemp -d "$d/.incoming.XXXXXX"); trap \'rm -rf "$t"\' EXIT; '
        'tar -x -f - -C "$t"; cd "$t"; '
        "find . -type f | while IFS= read -r f; do "
        'mkdir -p "$d/$(dirname "$f")"; mv -f "$f" "$d/$f"; done'
    )


def deploy_commands(target: Target, key_path: str, rebuild: str) -> list[list[str]]:
    """The two commands of one deploy: the copy (reads `tarball()` on stdin), then the switch."""
    return [
        ssh_command(target, key_path, copy_script(target.remote_dir)),
        ssh_command(target, key_path, f"{shlex.quote(rebuild)} switch"),
    ]


def files_of(props: Mapping[str, Any]) -> dict[str, str]:
    """Every file a deploy writes, by its path relative to the remote dir."""
    return {**props["bundle"], props["fileName"]: props["config"]}


def digest(files: Mapping[str, str]) -> str:
    """sha256 over the files' names and texts: equal digests mean nothing to deploy."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(json.dumps([name, files[name]]).encode())
    return h.hexdigest()


def tarball(files: Mapping[str, str]) -> bytes:
    """The files as a tar archive; fixed owner, mode and time, so equal files give equal bytes."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            data = files[name].encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def run(argv: list[str], stdin: bytes | None) -> subprocess.CompletedProcess:
    """Run one ssh command (tests replace this to see the commands without a host)."""
    if shutil.which(argv[0]) is None:
        raise DeployError(
            f"{argv[0]} is not installed: the nixos platform deploys over ssh "
            "(scripts/bootstrap installs openssh-client)"
        )
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=_TIMEOUT_S)


@contextmanager
def key_file(key: str) -> Iterator[str]:
    """The private key in a 0600 file that exists only while the block runs."""
    folder = tempfile.mkdtemp(prefix="bluegreen-ssh-")  # 0700: nobody else can even list it
    path = os.path.join(folder, "id")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key if key.endswith("\n") else key + "\n")  # ssh rejects a key without it
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _target(props: Mapping[str, Any]) -> Target:
    return Target(
        host=props["host"],
        user=props["user"],
        port=int(props["port"]),
        known_hosts=props["knownHosts"],
        remote_dir=props["remoteDir"],
    )


def _tail(data: bytes, lines: int = 15) -> str:
    text = data.decode(errors="replace").strip()
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def deploy(props: Mapping[str, Any], files: Mapping[str, str]) -> None:
    """Copy `files` to the host and switch it to them."""
    target = _target(props)
    os.makedirs(os.path.dirname(target.known_hosts), exist_ok=True)
    where = f"{target.user}@{target.host}:{target.port}"
    with key_file(props["sshKey"]) as key:
        copy, switch = deploy_commands(target, key, props["rebuild"])
        done = run(copy, tarball(files))
        if done.returncode != 0:
            raise DeployError(
                f"copying {props['fileName']} to {where}:{target.remote_dir} failed "
                f"(ssh exit {done.returncode}); nothing was switched:\n{_tail(done.stderr)}"
            )
        done = run(switch, None)
        if done.returncode != 0:
            raise DeployError(
                f"`{props['rebuild']} switch` failed on {where} (exit {done.returncode}); "
                f"the host keeps its current system:\n{_tail(done.stderr + done.stdout)}"
            )


def confirmed(confirm: Mapping[str, Any] | None) -> tuple[bool, str]:
    """Probe what the switch should have changed: (whether it did, what was seen)."""
    if not confirm:
        return True, "not probed"
    expect = confirm.get("headers") or {}

    def serving(a: probe.Answer) -> bool:
        return a.status is not None and all(a.headers.get(k) == v for k, v in expect.items())

    answer, waited = probe.wait_until(
        confirm["url"],
        serving,
        timeout=float(confirm.get("timeoutSeconds", 30)),
        token=confirm.get("probeToken") or "",
    )
    if serving(answer):
        return True, f"{confirm['url']} answered as expected after {waited:.1f}s"
    seen = (
        ", ".join(f"{k}: {answer.headers.get(k, '(none)')}" for k in expect)
        if answer.status is not None
        else f"no answer ({answer.error})"
    )
    wanted = ", ".join(f"{k}: {v}" for k, v in expect.items()) or "any answer"
    return False, f"after {waited:.1f}s {confirm['url']} gave {seen}; expected {wanted}"


class HostProvider(ResourceProvider):
    serialize_as_secret_always = False
    outputs: tuple[str, ...] = ("digest",)
    """What the provider computes; the rest of the state is the inputs."""
    secret_outputs: tuple[str, ...] = ("sshKey",)
    """What must stay secret in the state as well as in the inputs."""

    def prepare(
        self, props: dict[str, Any], olds: dict[str, Any] | None, live: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """`props` with the file a deploy writes (`config`), and the answer that confirms it.
        An arm's file is rendered by the program already. `live`: for a deploy, not a diff, so
        what the host serves may be asked."""
        return props, props.get("confirm")

    def restoring(self, previous: dict[str, Any], failed: dict[str, Any]) -> dict[str, Any]:
        """What to switch back to when `failed` was not confirmed: `previous`, as it was."""
        return previous

    def _apply(
        self,
        props: dict[str, Any],
        confirm: dict[str, Any] | None,
        previous: dict[str, Any] | None,
    ) -> dict[str, Any]:
        files = files_of(props)
        deploy(props, files)
        ok, seen = confirmed(confirm)
        if not ok:
            if previous is not None:
                back = self.restoring(previous, props)
                deploy(back, files_of(back))
                restored = "The previous configuration was switched back to and keeps serving."
            else:
                restored = "There was no previous configuration to go back to."
            raise DeployError(
                f"{props['host']} switched to the new {props['fileName']}, but {seen}. {restored}"
            )
        return {**props, "digest": digest(files)}

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._apply(*self.prepare(props, None, live=True), None)
        return CreateResult(
            id_=f"{props['host']}:{props['remoteDir']}/{props['fileName']}", outs=outs
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in _REPLACE_ON if olds.get(k) != news.get(k)]
        try:
            files = files_of(self.prepare(news, olds)[0])
        except (KeyError, TypeError, ValueError):  # inputs still unknown in a preview
            return DiffResult(changes=True, replaces=replaces, delete_before_replace=False)
        changed = olds.get("digest") != digest(files) or any(
            olds.get(k) != v for k, v in news.items() if k not in self.outputs and k != "__provider"
        )
        return DiffResult(changes=changed, replaces=replaces, delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        prepared, confirm = self.prepare(news, olds, live=True)
        if olds.get("digest") == digest(files_of(prepared)):
            # Only how we reach the host changed (key, user, port, probe): nothing to switch.
            return UpdateResult(outs={**prepared, "digest": olds["digest"]})
        return UpdateResult(outs=self._apply(prepared, confirm, olds))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        deploy(props, {props["fileName"]: TOMBSTONE})


def limits_until(spec: dict[str, Any], olds: dict[str, Any] | None, now: float) -> int | None:
    """When the limits of bluegreen:limitWhen "hold" end, in whole epoch seconds: the hold
    after the last change that moved traffic (new weights, or the first deploy). Until traffic
    moves after "hold" is chosen, 0: they have ended. None: they always apply, or there are
    none."""
    b = nginx.Features.from_props(spec).backpressure
    if not (b.enabled and b.when == "hold"):
        return None
    if olds is None or (olds.get("edge") or {}).get("weights") != spec["weights"]:
        return math.ceil(now + b.hold_s)
    return int(olds.get("limitsUntil") or 0)


def served_lease(confirm: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The lease the edge serves now, as a switch state's `lease` whose `color` is None when
    nobody holds it; None when it cannot be read."""
    if not confirm:
        return None
    answer = probe.request(urllib.parse.urljoin(confirm["url"], LEASE_PATH), timeout=2.0)
    fence = answer.json().get("fence") if answer.status == 200 else None
    if not isinstance(fence, int) or isinstance(fence, bool):
        return None
    return {"color": answer.json().get("holder"), "fence": fence}


def highest(
    recorded: Mapping[str, Any] | None, served: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The lease the next one follows: this resource's record, unless the edge serves a higher
    fence (a failed update's restore, which Pulumi does not record); then that one, whose holder
    may be another colour, or unknown while writes are frozen (None: the fence grows)."""
    if served and (not recorded or int(served["fence"]) > int(recorded["fence"])):
        return {"since": 0, **(recorded or {}), **served}
    return recorded


class EdgeHostProvider(HostProvider):
    """The edge node: its file is rendered from the edge's settings (`render.edge_spec`, the
    `edge` input), and the switch counts once the edge answers with the new generation."""

    outputs = ("digest", "config", "generation", "limitsUntil", "lease", "probeToken")
    # The node's file carries the probe token (the switch state's), so it is secret as well.
    secret_outputs = ("sshKey", "config", "probeToken")

    def prepare(
        self, props: dict[str, Any], olds: dict[str, Any] | None, live: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        now = time.time()
        until = limits_until(props["edge"], olds, now)
        # The fence only grows: the next one follows this resource's last, or the edge's when
        # it serves a higher one. The time of the change is the apply's, in whole seconds (Nix
        # writes large floats inexactly); the edge serves its own stamp as `since`.
        spec = props["edge"]
        served = served_lease(props.get("confirm")) if live else None
        lease = nginx.Lease.next(
            highest((olds or {}).get("lease"), served),
            spec["activeColor"],
            int(spec.get("handover") or 5),
            int(now),
        )
        # One per edge, kept across updates (`nginx.probe_token`).
        token = nginx.probe_token((olds or {}).get("probeToken"))
        rendered = render.edge_from_spec(spec, until, lease, token)
        confirm = props.get("confirm")
        if confirm:
            headers = {
                **confirm.get("headers", {}),
                "x-bluegreen-edge-generation": rendered.generation,
            }
            confirm = {**confirm, "headers": headers, "probeToken": token}
        outs = {
            **props,
            "config": rendered.text,
            "generation": rendered.generation,
            "limitsUntil": until,
            "lease": rendered.state["lease"],
            "probeToken": token,
        }
        return outs, confirm

    def restoring(self, previous: dict[str, Any], failed: dict[str, Any]) -> dict[str, Any]:
        """`previous` again, its lease with a fence no lower than the failed one's, which the
        edge may have served (`nginx.restored` is the local edge's same rule)."""
        spec = previous["edge"]
        lease = nginx.Lease.next(
            highest(previous.get("lease"), failed.get("lease")),
            spec["activeColor"],
            int(spec.get("handover") or 5),
            int(time.time()),
        )
        token = nginx.probe_token(failed.get("probeToken"), previous.get("probeToken"))
        rendered = render.edge_from_spec(spec, previous.get("limitsUntil"), lease, token)
        return {
            **previous,
            "config": rendered.text,
            "generation": rendered.generation,
            "lease": rendered.state["lease"],
        }


class NixosHost(Resource, module="nixos", name="Host"):
    """One NixOS host switched to a configuration that bluegreen rendered."""

    digest: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        props: dict[str, Any],
        opts: pulumi.ResourceOptions | None = None,
        provider: HostProvider | None = None,
    ):
        provider = provider or HostProvider()
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=list(provider.secret_outputs))
        )
        super().__init__(provider, name, {**props, **dict.fromkeys(provider.outputs)}, opts)
