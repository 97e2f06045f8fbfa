import base64
import os

import pytest

from tests.support.sandbox import LocalProject, free_ports, make_project


def _project(tmp_path, policy: bool):
    lp = make_project(tmp_path, policy=policy)
    yield lp
    left = lp.stop()  # destroy has its own test (test_flip.py); this stops what is running
    assert not left, f"left behind: {', '.join(left)}"


@pytest.fixture
def project(tmp_path) -> LocalProject:
    """The project as users run it: every preview and up passes the policy pack."""
    yield from _project(tmp_path, policy=True)


@pytest.fixture
def bare_project(tmp_path) -> LocalProject:
    """Without the policy pack, to prove the edge's own guards hold when nobody passes it."""
    yield from _project(tmp_path, policy=False)


@pytest.fixture(scope="session")
def _shared(tmp_path_factory):
    lp = make_project(tmp_path_factory.mktemp("shared"), policy=True)
    lp.up_all(active="blue")
    yield lp
    left = lp.stop()
    assert not left, f"left behind: {', '.join(left)}"


@pytest.fixture
def deployed(_shared) -> LocalProject:
    """Stacks deployed once per worker, blue live, for tests that only read or whose change is
    refused: each such test costs no deploy. The stack files and the policy pack's config are
    put back after each test, and what runs must be as the test found it (blue answering
    through the edge), or the test fails. A test that changes what runs takes `project` and
    stacks of its own."""
    lp = _shared
    paths = [f"Pulumi.{stack}.yaml" for stack in ("blue", "green", "live")]
    paths = [os.path.join(lp.dir, p) for p in [*paths, os.path.join("policy", "config.json")]]
    files = {}
    for path in paths:
        with open(path) as f:
            files[path] = f.read()
    yield lp
    for path, text in files.items():
        with open(path, "w") as f:
            f.write(text)
    assert lp.colors(5) == ["blue"] * 5, "a test on the shared stacks changed what they serve"


@pytest.fixture
def dns_project(project):
    """Blue on 127.0.0.10 and green on 127.0.0.11, as the reference guide's two nodes."""
    dns_port, health_port = free_ports(2)
    project.ports["dns"] = dns_port
    project.ws.config_set("live", "bluegreen:dnsHealthPort", str(health_port))
    project.ws.config_set("blue", "bluegreen:bindAddress", "127.0.0.10")
    project.ws.config_set("green", "bluegreen:bindAddress", "127.0.0.11")
    for key, value in {
        "dnsProvider": "rfc2136",
        "dnsZone": "bluegreen.test",
        "dnsServer": f"127.0.0.1:{dns_port}",
    }.items():
        project.ws.config_set("live", f"bluegreen:{key}", value)
    secret = base64.b64encode(os.urandom(32)).decode()
    project.ws.config_set_secret("live", "bluegreen:tsigSecret", secret)
    project.server = f"127.0.0.1:{dns_port}"
    project.tsig_secret = secret
    return project


@pytest.fixture
def data_project(tmp_path) -> LocalProject:
    """The project with a data stack (PostgreSQL at 0001_items, not deployed yet), policy on."""
    lp = make_project(tmp_path, policy=True, data=True)
    yield lp
    left = lp.stop()  # stops PostgreSQL and the arms by their pid files, and removes the cluster
    assert not left, f"left behind: {', '.join(left)}"
