"""Config validation: every bad value is named with its key, the value and what is allowed."""

import pytest

from bluegreen.config import ConfigError, from_values, other, unset_defaults


def load(stack: str = "blue", **values):
    return from_values(unset_defaults(lambda k: values.get(k)), stack, "/repo")


ARM = {"role": "arm", "color": "blue", "version": "v1", "port": "18081"}
EDGE = {"role": "edge", "activeColor": "blue"}


def problems(stack: str = "blue", **values) -> str:
    with pytest.raises(ConfigError) as err:
        load(stack, **values)
    return str(err.value)


def test_arm_and_edge_settings():
    arm = load(**ARM)
    assert (arm.role, arm.color, arm.version, arm.port, arm.platform) == (
        "arm",
        "blue",
        "v1",
        18081,
        "local",
    )
    assert arm.run_dir == "/repo/.bluegreen/blue"
    edge = load("live", **EDGE)
    assert (edge.active_color, other(edge.active_color), edge.edge_port) == (
        "blue",
        "green",
        18080,
    )
    assert edge.arm_stacks == {"blue": "blue", "green": "green"}


def test_unknown_colour_names_key_value_and_choices():
    assert problems(**{**EDGE, "activeColor": "purple"}) == (
        'bluegreen:activeColor must be "blue" or "green", got "purple"'
    )


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "port",
            "abc",
            'bluegreen:port must be an integer port from 1024 to 65535, got "abc"',
        ),
        (
            "port",
            "70000",
            'bluegreen:port must be an integer port from 1024 to 65535, got "70000"',
        ),
        ("version", "v1;}", "bluegreen:version must be 1-64 characters"),
        ("version", "v1\nserver evil", "bluegreen:version must be"),
        ("color", "teal", 'bluegreen:color must be "blue" or "green", got "teal"'),
        (
            "platform",
            "heroku",
            'bluegreen:platform must be one of local, nixos, aws, kubernetes, got "heroku"',
        ),
        (
            "healthPath",
            "/ok;return 200",
            "bluegreen:healthPath must be an absolute URL path",
        ),
        ("appName", "Shop Front", "bluegreen:appName must be lowercase letters"),
        (
            "bindAddress",
            "0.0.0.0",
            "bluegreen:bindAddress must be a loopback address on the local platform",
        ),
        ("simulate", "delay-ms=fast", "bluegreen:simulate must be comma-separated"),
    ],
)
def test_malformed_values_are_named(key, value, expected):
    assert expected in problems(**{**ARM, key: value})


def test_every_problem_is_reported_at_once():
    message = problems(**{**ARM, "port": "x", "version": "bad version"})
    assert "bluegreen:port" in message and "bluegreen:version" in message


def test_role_is_required():
    assert "bluegreen:role is not set" in problems(color="blue")


def test_pointer_lives_only_on_the_edge():
    assert "bluegreen:activeColor belongs only in the edge stack" in problems(
        **{**ARM, "activeColor": "green"}
    )
    assert "bluegreen:version belongs only in an arm stack" in problems(
        "live", **{**EDGE, "version": "v3"}
    )


def test_unset_defaults_from_pulumi_yaml_mean_not_set():
    # Pulumi.yaml declares role-specific keys with "" (ports 0) so every stack validates.
    settings = load(**{**ARM, "activeColor": "", "simulate": ""})
    assert settings.active_color is None and settings.simulate == {}
    assert "bluegreen:port is not set" in problems(**{**ARM, "port": "0"})


def test_simulate_becomes_service_flags():
    settings = load(**{**ARM, "simulate": "delay-ms=40,ready-status=500"})
    assert settings.app_args == ["--delay-ms=40", "--ready-status=500"]


def test_flip_timeout_bounds():
    assert load("live", **EDGE, flipTimeoutSeconds="30").flip_timeout_s == 30
    assert "bluegreen:flipTimeoutSeconds must be a number of seconds from 1 to 300" in problems(
        "live", **EDGE, flipTimeoutSeconds="0"
    )


@pytest.mark.parametrize(
    ("stack", "values", "expected"),
    [
        (
            "blue",
            {**ARM, "platform": "nixos"},
            "bluegreen:nodes is not set: the nixos platform needs",
        ),
        (
            "live",
            {**EDGE, "platform": "nixos"},
            "bluegreen:edgeNode is not set: the nixos platform",
        ),
        ("blue", {**ARM, "platform": "aws"}, "bluegreen:vpcId is not set: the aws platform needs"),
        ("blue", {**ARM, "platform": "aws"}, "bluegreen:ami is not set: the aws platform needs"),
        ("live", {**EDGE, "platform": "kubernetes"}, "bluegreen:kubeContext is not set"),
        (
            "blue",
            {**ARM, "platform": "kubernetes", "kubeContext": "kind"},
            "bluegreen:image is not set",
        ),
        ("live", {**EDGE, "dnsProvider": "route53"}, "bluegreen:dnsZone is not set"),
        (
            "live",
            {**EDGE, "dnsProvider": "route53", "dnsZone": "a.example"},
            "bluegreen:dnsZoneId is not set",
        ),
        (
            "live",
            {**EDGE, "dnsProvider": "bind"},
            'bluegreen:dnsProvider must be "none", "route53" or "rfc2136"',
        ),
    ],
)
def test_a_selected_platform_that_is_not_configured_names_the_missing_key(stack, values, expected):
    assert expected in problems(stack, **values)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "nodes",
            '["10.0.0.10; rm -rf /"]',
            "bluegreen:nodes must hold IP addresses or host names",
        ),
        ("sshUser", "root;id", "bluegreen:sshUser must be a Unix user name"),
    ],
)
def test_nixos_values_that_reach_nix_or_ssh_are_checked(key, value, expected):
    assert expected in problems(
        **{**ARM, "platform": "nixos", "nodes": '["10.0.0.10"]', key: value}
    )


def test_configured_platforms_parse():
    nixos = load(**{**ARM, "platform": "nixos", "nodes": '["10.0.0.10"]'}).nixos
    assert nixos.nodes == ("10.0.0.10",) and nixos.app_port == 8000
    dns = load("live", **EDGE, dnsProvider="rfc2136", dnsZone="Bluegreen.Test.").dns
    assert (dns.zone, dns.ttl, dns.server) == ("bluegreen.test", 30, "127.0.0.1:18053")
