"""DNS records that are real on the local platform: a Knot DNS server on loopback, RFC 2136
updates signed with a TSIG key held as a Pulumi secret, and real queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.workspace import PulumiError
from platforms.dns import lookup


def test_names_answer_the_edge_and_each_arm_with_the_declared_ttl(dns_project):
    p = dns_project
    p.up_all(active="blue")
    assert lookup("shop.bluegreen.test", p.server) == (["127.0.0.1"], 30)
    assert lookup("blue.bluegreen.test", p.server) == (["127.0.0.10"], 30)
    assert lookup("green.bluegreen.test", p.server) == (["127.0.0.11"], 30)
    # The TSIG secret is a Pulumi secret: never in plain text in the state as the backend stores it.
    backend = Path(p.ws.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    [state] = backend.glob(".pulumi/stacks/*/live.json")
    assert "tsigSecret" in state.read_text() and p.tsig_secret not in state.read_text()


def test_dns_switch_flips_the_live_name_with_pulumi_up(dns_project):
    p = dns_project
    p.ws.config_set("live", "bluegreen:dnsSwitch", "true")
    p.up_all(active="blue")
    assert lookup("shop.bluegreen.test", p.server) == (["127.0.0.10"], 30)
    p.ws.config_set("live", "bluegreen:activeColor", "green")
    p.ws.up("live")
    assert lookup("shop.bluegreen.test", p.server) == (["127.0.0.11"], 30)
    p.ws.config_set("live", "bluegreen:activeColor", "blue")
    p.ws.up("live")
    assert lookup("shop.bluegreen.test", p.server) == (["127.0.0.10"], 30)


def test_a_long_ttl_is_refused_by_the_policy_pack(dns_project):
    p = dns_project
    p.up_all(active="blue")
    p.ws.config_set("live", "bluegreen:dnsTtl", "300")
    with pytest.raises(PulumiError) as err:
        p.ws.up("live")
    [violation] = err.value.outcome.violations  # one refusal, naming the key
    assert violation.message.startswith("bluegreen:dnsTtl 300 on stack live denied")
    assert lookup("shop.bluegreen.test", p.server) == (["127.0.0.1"], 30)
