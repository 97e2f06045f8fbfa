"""Health-based DNS for several edges: an edge that stops answering leaves the live name's
answer, and comes back when it answers again.

    python -m agents.edge.dns_health --listen 127.0.0.1:18096 --server 127.0.0.1:15353 \\
        --zone example.test --name shop.example.test --ttl 5 --key-file dns-health.key \\
        --edge site-a=127.0.0.1:18080 --edge site-b=127.0.0.2:18080

Why this and not keepalived's VRRP: a floating address moves one address between hosts on one
network segment, so it cannot stand for edges at several sites, and it hides which edge answers.
The live name already has one A record per edge with a short TTL, kept by RFC 2136 updates on
the authoritative server (Knot on `local`); withdrawing a failed edge from that rrset is what
Route 53's health checks do on `aws`, and clients that try the next address (curl, browsers)
already go around an edge that refuses connections meanwhile.

Every `--interval` seconds each edge is asked for its status (`STATUS_PATH`) with `--timeout`:
`--fails` failures in a row take it out, `--rises` answers in a row bring it back. The answer is
then the healthy edges' addresses, or every edge when none is healthy (fail open, as Route 53
does: an empty answer helps nobody). The server's answer is read back every interval and put
right when it differs, so an update of the live stack that writes every edge's address again is
corrected within one interval.

The bound, from an edge's failure to its address leaving the authoritative answer:
`fails x interval + timeout + interval` (4.5 s with the defaults: 1 s, 2 fails, 0.5 s); a
resolver that cached the answer may keep it for the record's TTL more.

The TSIG key is read from an owner-only file (JSON: name, algorithm, secret), never from the
command line. Over HTTP the agent only reports, at `--listen` `/_bluegreen/dns-health`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bluegreen import probe, rfc2136
from bluegreen.switch import STATUS_PATH

REPORT_PATH = "/_bluegreen/dns-health"


@dataclass
class Edge:
    site: str
    address: str
    """host:port of the edge's nginx; the host is what the record holds."""
    up: bool = True
    """Whether the edge is in the answer; every edge starts in it, as the stack declared."""
    streak: int = 0
    """Checks in a row that disagree with `up`."""
    changed: float = field(default_factory=time.time)

    @property
    def host(self) -> str:
        return self.address.rsplit(":", 1)[0]


@dataclass
class Checker:
    edges: list[Edge]
    fails: int
    rises: int
    timeout: float

    def check(self) -> None:
        """Ask every edge at once, and count each answer toward its state."""
        answers: dict[str, bool] = {}

        def ask(edge: Edge) -> None:
            answer = probe.request(f"http://{edge.address}{STATUS_PATH}", timeout=self.timeout)
            answers[edge.site] = answer.status == 200

        threads = [threading.Thread(target=ask, args=(e,)) for e in self.edges]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for edge in self.edges:
            healthy = answers.get(edge.site, False)
            edge.streak = 0 if healthy == edge.up else edge.streak + 1
            if edge.streak >= (self.rises if not edge.up else self.fails):
                edge.up, edge.streak, edge.changed = healthy, 0, time.time()
                log(f"edge {edge.site} ({edge.address}) is {'up' if healthy else 'down'}")

    def answer(self) -> list[str]:
        """The addresses the live name should answer: the healthy edges', or all of them."""
        healthy = [e.host for e in self.edges if e.up]
        return sorted(healthy or [e.host for e in self.edges])

    def report(self, name: str, served: list[str]) -> dict:
        return {
            "name": name,
            "answer": served,
            "edges": {
                e.site: {"address": e.address, "up": e.up, "since": round(e.changed, 3)}
                for e in self.edges
            },
        }


def log(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}", flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m agents.edge.dns_health", description=__doc__)
    p.add_argument("--listen", required=True, help="host:port of the report")
    p.add_argument("--server", required=True, help="host:port of the RFC 2136 primary")
    p.add_argument("--zone", required=True)
    p.add_argument("--name", required=True, help="the live name, fully qualified")
    p.add_argument("--ttl", type=int, required=True)
    p.add_argument("--key-file", required=True, help="JSON: name, algorithm, secret")
    p.add_argument("--edge", action="append", required=True, help="site=host:port")
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--timeout", type=float, default=0.5)
    p.add_argument("--fails", type=int, default=2)
    p.add_argument("--rises", type=int, default=2)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    with open(args.key_file) as f:
        key = json.load(f)
    edges = [Edge(*spec.split("=", 1)) for spec in args.edge]
    checker = Checker(edges, args.fails, args.rises, args.timeout)
    record = {
        "name": args.name,
        "zone": args.zone,
        "server": args.server,
        "ttl": args.ttl,
        "type": "A",
        "keyName": key["name"],
        "algorithm": key["algorithm"],
        "secret": key["secret"],
    }
    served: list[str] = []
    stop = threading.Event()

    class Report(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            ok = self.path == REPORT_PATH
            body = json.dumps(checker.report(args.name, served) if ok else {"error": "not found"})
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode() + b"\n")

        def log_message(self, *_: object) -> None:
            pass

    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Report)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log(f"checking {len(edges)} edges for {args.name} every {args.interval:g} s")
    while not stop.is_set():
        started = time.monotonic()
        checker.check()
        want = checker.answer()
        try:
            served = rfc2136.lookup(args.name, args.server)[0]
            if served != want:
                rfc2136.update(record, want)
                log(f"{args.name} now answers {', '.join(want)} (was {', '.join(served)})")
                served = want
        except (OSError, RuntimeError, rfc2136.DNSException) as err:
            log(f"cannot read or update {args.name} at {args.server}: {err}")
        stop.wait(max(0.0, args.interval - (time.monotonic() - started)))
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
