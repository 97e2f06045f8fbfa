"""scripts/bootstrap meets users where they are: a `pulumi` they installed, at least as new as the
SDK pin, is used as it is; nothing is built and Go is never asked for. An older one is not used.

Runs the real script; the Debian packages and the venv are already in place (the test command
bootstrapped first), so only the CLI decision is exercised. The `pulumi` on PATH is a stand-in
that prints a version, which is all bootstrap asks of it."""

from __future__ import annotations

import os
import stat
import subprocess

from cutover.workspace import ROOT


def bootstrap(tmp_path, version: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "user-bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text(f"#!/bin/sh\necho v{version}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "BLUEGREEN_CACHE": str(tmp_path / "cache"),
        "GOFLAGS": "-mod=mod -this-flag-fails-any-go-build",  # a build attempt cannot pass
    }
    return subprocess.run(
        [os.path.join(ROOT, "scripts", "bootstrap")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def pinned() -> str:
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        return next(line.split("==")[1].strip() for line in f if line.startswith("pulumi=="))


def test_a_newer_pulumi_on_path_is_used_and_nothing_is_built(tmp_path):
    major, minor, patch = (int(x) for x in pinned().split("."))
    result = bootstrap(tmp_path, f"{major}.{minor + 41}.0")
    assert result.returncode == 0, result.stderr
    assert f"using {tmp_path}/user-bin/pulumi (v{major}.{minor + 41}.0" in result.stderr
    assert "building" not in result.stderr
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_an_older_pulumi_on_path_is_not_used(tmp_path):
    major, minor, _ = (int(x) for x in pinned().split("."))
    result = bootstrap(tmp_path, f"{major}.{minor - 1}.9")
    assert f"v{major}.{minor - 1}.9, older than the SDK's v{pinned()}: not used" in result.stderr
    # It goes on to build (which the poisoned GOFLAGS makes fail at once): no old CLI is used.
    assert "building the Pulumi CLI" in result.stderr
    assert result.returncode != 0
