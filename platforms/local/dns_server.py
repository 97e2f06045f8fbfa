"""A real authoritative DNS server on loopback (Knot DNS) that accepts RFC 2136 updates.

The local platform runs it for the live stack, like nginx, so that the DNS records the edge
declares are real records answered to real queries. Updates must be signed with the stack's TSIG
key; the zone starts with only its SOA and NS records.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from typing import Any

import dns.message
import dns.query
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider

from platforms.local.process import daemon_pid, port_in_use, start_ticks

_REPLACE_ON = ("zone", "listen", "keyName", "algorithm", "secret", "runDir")


def _paths(run_dir: str) -> dict[str, str]:
    base = os.path.join(run_dir, "dns")
    return {
        "dir": base,
        "conf": os.path.join(base, "knot.conf"),
        "pid": os.path.join(base, "knot.pid"),
        "log": os.path.join(base, "knot.log"),
        "db": os.path.join(base, "db"),
    }


def control_socket(run_dir: str) -> str:
    """A unix socket path short enough for sun_path (108 bytes), whatever the run dir."""
    return f"/tmp/bluegreen-knot-{hashlib.sha256(run_dir.encode()).hexdigest()[:12]}.sock"


def server_pid(run_dir: str) -> int | None:
    """Our knotd: the pid file's process, if its command line names our config."""
    paths = _paths(run_dir)
    return daemon_pid(paths["pid"], paths["conf"])


def _knotd() -> str:
    found = shutil.which("knotd") or (
        "/usr/sbin/knotd" if os.path.exists("/usr/sbin/knotd") else None
    )
    if not found:
        raise RuntimeError("Knot DNS is not installed: run scripts/bootstrap (Debian package knot)")
    return found


def render(props: dict[str, Any]) -> tuple[str, str]:
    """knot.conf and the initial zone file. Values were validated with the config."""
    paths, zone = _paths(props["runDir"]), props["zone"]
    host, port = props["listen"].rsplit(":", 1)
    conf = f"""\
# Rendered by bluegreen (platforms/local/dns_server.py); holds the TSIG secret: mode 0600.
server:
    listen: {host}@{port}
    rundir: {paths["dir"]}
    pidfile: {paths["pid"]}
    user: {pwd.getpwuid(os.getuid()).pw_name}:{grp.getgrgid(os.getgid()).gr_name}
control:
    listen: {control_socket(props["runDir"])}
database:
    storage: {paths["db"]}
key:
  - id: {props["keyName"]}
    algorithm: {props["algorithm"]}
    secret: {props["secret"]}
acl:
  - id: bluegreen-update
    key: {props["keyName"]}
    action: update
template:
  - id: default
    storage: {paths["dir"]}
    zonefile-sync: -1
    zonefile-load: difference-no-serial
    journal-content: all
zone:
  - domain: {zone}
    file: {zone}.zone
    acl: bluegreen-update
log:
  - target: {paths["log"]}
    any: info
"""
    zone_file = f"""\
$TTL 30
@ SOA ns.{zone}. hostmaster.{zone}. 1 60 60 3600 30
@ NS ns.{zone}.
ns A {host}
"""
    return conf, zone_file


def answers_soa(zone: str, listen: str) -> bool:
    host, port = listen.rsplit(":", 1)
    try:
        reply = dns.query.udp(
            dns.message.make_query(zone, "SOA"), host, port=int(port), timeout=0.5
        )
    except (OSError, dns.exception.DNSException):
        return False
    return bool(reply.answer)


class DnsServerProvider(ResourceProvider):
    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        paths = _paths(props["runDir"])
        host, port = props["listen"].rsplit(":", 1)
        if port_in_use(host, int(port)):
            raise RuntimeError(
                f"bluegreen:dnsServer {props['listen']} is already in use by another process; "
                "choose a free host:port for the local DNS server (nothing was started)"
            )
        shutil.rmtree(paths["dir"], ignore_errors=True)
        os.makedirs(paths["db"], mode=0o700)
        conf, zone_file = render(props)
        fd = os.open(paths["conf"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(conf)
        with open(os.path.join(paths["dir"], f"{props['zone']}.zone"), "w") as f:
            f.write(zone_file)
        started = subprocess.run(
            [_knotd(), "-c", paths["conf"], "-d"], capture_output=True, text=True, timeout=30
        )
        if started.returncode != 0:
            raise RuntimeError(f"knotd did not start: {started.stderr.strip()}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not answers_soa(props["zone"], props["listen"]):
            time.sleep(0.05)
        if not answers_soa(props["zone"], props["listen"]):
            raise RuntimeError(f"knotd does not answer for {props['zone']} at {props['listen']}")
        return CreateResult(
            id_=f"dns:{props['listen']}", outs={**props, "pid": server_pid(props["runDir"])}
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in _REPLACE_ON if olds.get(k) != news.get(k)]
        if server_pid(news["runDir"]) is None:
            replaces.append("pid")  # it is down: `pulumi up` starts it again
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=True)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if server_pid(props["runDir"]) is None:
            return ReadResult(id_=None, outs={})
        return ReadResult(id_=id_, outs=props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        pid = server_pid(props["runDir"])
        if pid is not None:
            ticks = start_ticks(pid)
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and start_ticks(pid) == ticks:
                time.sleep(0.02)
        shutil.rmtree(_paths(props["runDir"])["dir"], ignore_errors=True)
        try:
            os.unlink(control_socket(props["runDir"]))
        except FileNotFoundError:
            pass


class DnsServer(Resource, module="local", name="DnsServer"):
    """Knot DNS on loopback, authoritative for the stack's zone, updated with RFC 2136."""

    pid: pulumi.Output[int]

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["secret"])
        )
        super().__init__(DnsServerProvider(), name, {**props, "pid": None}, opts)
