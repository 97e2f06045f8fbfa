"""A NixOS host as a Pulumi resource: one rendered node configuration, deployed over SSH.

The deploy, and why it is this one:

1. copy the rendered file to `/etc/nixos/bluegreen/<name>.nix` on the host, with the modules and
   the reference app beside it (`bundle.BUNDLE`): one `ssh` that unpacks a tar from stdin into a
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
the resource knows its previous weights and that time (its outputs). With several edges
(bluegreen:edges) each node is one such resource: one a flip in waves does not move yet keeps the
traffic it served (edge_hold.py), and every node serves one writer lease, which none of them
stamps (lease_release.py says how the nodes come to the same one, and who stamps it).

The SSH private key is a secret input, and never logged; so are a host's `secretFiles` (the
data node's password, an arm's DSN: root's 0600 files in /var/lib/bluegreen/secrets, see
ssh_deploy.py), which a delete removes once the emptied config no longer reads them. The
transport itself, the ssh commands and the key's file that exists only while they run, is
ssh_deploy.py's; this module holds the providers, which Pulumi finds again by this module's path.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
import time
import urllib.parse
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
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
from bluegreen.switch import LEASE_PATH, STATUS_PATH
from platforms.nixos import edge_hold, lease_release, render
from platforms.nixos.ssh_deploy import (
    SECRETS_DIR,
    DeployError,
    after_switch,
    deploy,
    digest,
    files_of,
    remote,
    secrets_of,
)

# What `pulumi destroy` leaves in the file the host's configuration.nix imports: a module that
# declares nothing, so the host's next rebuild still evaluates and the service is gone.
TOMBSTONE = (
    "# Emptied by `pulumi destroy`; remove the import of this file to drop it.\n{ ... }: { }\n"
)
_REPLACE_ON = ("host", "remoteDir", "fileName")


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
        deploy(props, files, then=after_switch(props, previous))
        ok, seen = confirmed(confirm)
        if not ok:
            if previous is not None:
                back = self.restoring(previous, props)
                deploy(back, files_of(back), then=after_switch(back, props))
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
            prepared = self.prepare(news, olds)[0]
            files = files_of(prepared)
        except (KeyError, TypeError, ValueError):  # inputs still unknown in a preview
            return DiffResult(changes=True, replaces=replaces, delete_before_replace=False)
        # What the state would record (an edge that holds its traffic records what it serves).
        changed = olds.get("digest") != digest(files) or any(
            olds.get(k) != v
            for k, v in prepared.items()
            if k not in self.outputs and k != "__provider"
        )
        return DiffResult(changes=changed, replaces=replaces, delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        prepared, confirm = self.prepare(news, olds, live=True)
        same_secrets = secrets_of(olds) == secrets_of(prepared)
        if same_secrets and olds.get("digest") == digest(files_of(prepared)):
            # Only how we reach the host changed (key, user, port, probe): nothing to switch.
            return UpdateResult(outs={**prepared, "digest": olds["digest"]})
        return UpdateResult(outs=self._apply(prepared, confirm, olds))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        deploy(props, {props["fileName"]: TOMBSTONE}, secrets={})
        if secrets_of(props):  # once nothing reads them any more
            paths = " ".join(shlex.quote(f"{SECRETS_DIR}/{p}") for p in secrets_of(props))
            failed = remote(props, f"rm -f -- {paths}")
            if failed:
                raise DeployError(f"{props['host']}: removing its secret files failed: {failed}")


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


def peer_lease(url: str, holder: str | None) -> dict[str, Any] | None:
    """The lease an edge of several serves (`color` None: nobody), read for one held by `holder`.
    An edge serves no holder both for nobody and while writes are frozen (its status says
    `readOnly`), when it holds the lease for the colour it serves; whether a frozen edge's lease
    is held by nobody it does not say. So it is read as nobody's when `holder` is nobody (a fence
    nobody holds needs no new number), else as the colour it serves: an edge that switched first
    is followed, not outgrown."""
    lease = served_lease({"url": url})
    if lease and lease["color"] is None and holder is not None:
        answer = probe.request(urllib.parse.urljoin(url, STATUS_PATH), timeout=2.0)
        doc = (answer.json() or {}) if answer.status == 200 else {}
        live = doc.get("live")
        if doc.get("readOnly") and isinstance(live, dict):
            lease["color"] = live.get("color")
    return lease


def peer_leases(urls: list[str], holder: str | None) -> list[dict[str, Any]]:
    """The leases the edges at `urls` serve (`peer_lease`), read at once; those that cannot be
    read are left out."""
    if not urls:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
        return [lease for lease in pool.map(lambda u: peer_lease(u, holder), urls) if lease]


def highest(
    recorded: Mapping[str, Any] | None, *served: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The lease the next one follows: this resource's record, unless an edge serves a higher
    fence (a failed update's restore, which Pulumi does not record; another edge of several);
    then the highest, whose holder may be another colour, or unknown while writes are frozen
    (None: the fence grows)."""
    for lease in served:
        if lease and (not recorded or int(lease["fence"]) > int(recorded["fence"])):
            recorded = {"since": 0, **(recorded or {}), **lease}
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
        # A site a flip in waves does not move yet serves what it served (edge_hold.py).
        kept = edge_hold.held(props, olds)
        props = kept or {k: v for k, v in props.items() if k != edge_hold.HOLD}
        until = limits_until(props["edge"], olds, now)
        # The fence only grows: the next one follows this resource's last, or the edge's when
        # it serves a higher one. The time of the change is the apply's, in whole seconds (Nix
        # writes large floats inexactly); the edge serves its own stamp as `since`.
        spec = props["edge"]
        handover = int(spec.get("handover") or 5)
        recorded = (olds or {}).get("lease")
        shared = props.get(edge_hold.SHARED)
        if shared is None:
            served = served_lease(props.get("confirm")) if live else None
            lease = nginx.Lease.next(
                highest(recorded, served), spec["activeColor"], handover, int(now)
            )
        else:
            # One of several: the lease every node serves, held by `holder` (lease_release.py),
            # read from this node and the others for a deploy and for a diff too, so that a
            # node left behind by a failed update shows a change.
            holder = shared.get("holder") or None
            urls = [(props.get("confirm") or {}).get("url"), *(props.get(edge_hold.PEERS) or [])]
            asked = live or olds is not None
            read = peer_leases([u for u in urls if u], holder) if asked else []
            followed = highest(recorded, *read)
            lease = lease_release.shared_lease(holder, recorded, followed, handover, int(now))
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
        spec, old = previous["edge"], previous.get("lease") or {}
        # A lease of several goes back to its holder, still unstamped (lease_release.py).
        holder = old.get("color") if old.get("shared") else spec["activeColor"]
        lease = nginx.Lease.next(
            highest(previous.get("lease"), failed.get("lease")),
            holder,
            int(spec.get("handover") or 5),
            int(time.time()),
        )
        if old.get("shared"):
            lease = dataclasses.replace(lease, shared=True, nobody=holder is None)
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
        secret = [*provider.secret_outputs, *(["secretFiles"] if "secretFiles" in props else [])]
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=secret)
        )
        super().__init__(provider, name, {**props, **dict.fromkeys(provider.outputs)}, opts)
