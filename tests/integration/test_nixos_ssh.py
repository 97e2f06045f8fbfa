"""The nixos platform's deploy over a real SSH connection, to a real sshd on loopback.

The test starts its own sshd (Debian's openssh-server) on a free 127.0.0.1 port with a host key
and a client key made for the test, and a stand-in `nixos-rebuild` that records how it was
called. It drives the dynamic provider's create, diff, update and delete directly, as the engine
would: the rendered file must land where the host's configuration.nix imports it, the switch
must follow the copy, and an unchanged config must not switch again. Only the last step of a
real deploy, NixOS building and activating the system, needs a real NixOS host.
"""

from __future__ import annotations

import subprocess

import pytest

from platforms.nixos import bundle, host, render, ssh_deploy


@pytest.fixture
def rebuild(tmp_path):
    """A stand-in for nixos-rebuild: records its arguments and the file it would have built."""
    calls = tmp_path / "rebuild.calls"
    script = tmp_path / "bin" / "nixos-rebuild"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> {calls}\n'
        f"cat {tmp_path}/etc/nixos/bluegreen/shop-blue.nix >> {calls}.seen\n"
    )
    script.chmod(0o755)

    def seen() -> list[str]:
        return calls.read_text().splitlines() if calls.exists() else []

    return str(script), seen


def props(sshd, tmp_path, rebuild_cmd: str, version: str) -> dict:
    return {
        "host": "127.0.0.1",
        "user": sshd["user"],
        "port": sshd["port"],
        "knownHosts": str(tmp_path / "run" / "known_hosts"),
        "remoteDir": str(tmp_path / "etc" / "nixos" / "bluegreen"),
        "rebuild": rebuild_cmd,
        "sshKey": sshd["key"],
        "fileName": "shop-blue.nix",
        "config": render.arm_node(
            stack="blue",
            node="127.0.0.1",
            color="blue",
            version=version,
            port=8000,
            health_path="/healthz/ready",
        ),
        "bundle": bundle.files(),
        "confirm": None,
    }


def test_the_config_lands_and_the_host_switches_only_when_it_changed(
    sshd, rebuild, tmp_path, monkeypatch
):
    keys = tmp_path / "keys"
    keys.mkdir()
    monkeypatch.setattr(ssh_deploy.tempfile, "tempdir", str(keys))
    rebuild_cmd, calls = rebuild
    remote = tmp_path / "etc" / "nixos" / "bluegreen"
    provider = host.HostProvider()

    v1 = props(sshd, tmp_path, rebuild_cmd, "v1")
    created = provider.create(v1)
    assert (remote / "shop-blue.nix").read_text() == v1["config"]
    for rel, text in v1["bundle"].items():
        assert (remote / rel).read_text() == text, rel
    assert calls() == ["switch"]
    # The switch ran after the copy: it saw the new file.
    assert (tmp_path / "rebuild.calls.seen").read_text() == v1["config"]
    assert not [p for p in remote.iterdir() if p.name.startswith(".incoming")]
    assert list(keys.iterdir()) == [], "the private key outlived the deploy"
    # The host key was accepted on first contact and is checked from now on.
    host_key = (sshd["dir"] / "host_key.pub").read_text().split()[1]
    assert host_key in (tmp_path / "run" / "known_hosts").read_text()

    # Nothing changed: the engine sees no diff, and an update would not switch either.
    again = props(sshd, tmp_path, rebuild_cmd, "v1")
    assert provider.diff(created.id, created.outs, again).changes is False
    provider.update(created.id, created.outs, again)
    assert calls() == ["switch"]

    # A new version: copied, then switched to.
    v2 = props(sshd, tmp_path, rebuild_cmd, "v2")
    assert provider.diff(created.id, created.outs, v2).changes is True
    updated = provider.update(created.id, created.outs, v2)
    assert 'version = "v2";' in (remote / "shop-blue.nix").read_text()
    assert calls() == ["switch", "switch"]

    # Destroy leaves a module that declares nothing, so the host's import still evaluates.
    provider.delete(created.id, updated.outs)
    assert (remote / "shop-blue.nix").read_text() == host.TOMBSTONE
    assert calls() == ["switch", "switch", "switch"]


def test_a_host_whose_key_changed_is_refused(sshd, rebuild, tmp_path):
    rebuild_cmd, calls = rebuild
    known = tmp_path / "run" / "known_hosts"
    known.parent.mkdir()
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    # What this stack accepted before is not what answers now: a man in the middle, or a
    # reinstalled host someone must vouch for.
    known.write_text(f"[127.0.0.1]:{sshd['port']} {(tmp_path / 'other_host_key.pub').read_text()}")
    with pytest.raises(ssh_deploy.DeployError, match="nothing was switched"):
        host.HostProvider().create(props(sshd, tmp_path, rebuild_cmd, "v1"))
    assert calls() == []
    assert not (tmp_path / "etc" / "nixos" / "bluegreen" / "shop-blue.nix").exists()
