"""Config validation: every bad value is named with its key, the value and what is allowed."""

import pytest

from bluegreen.config import ConfigError, other
from tests.support.mocks import stack


def load(name: str = "blue", **values):
    return stack(name, **values)


ARM = {"role": "arm", "color": "blue", "version": "v1", "port": "18081"}
EDGE = {"role": "edge", "activeColor": "blue"}
DATA = {"role": "data", "schemaRevision": "0001_items", "databasePassword": "pw"}


def problems(name: str = "blue", **values) -> str:
    with pytest.raises(ConfigError) as err:
        load(name, **values)
    return str(err.value)


def test_arm_and_edge_settings():
    arm = load(**ARM)
    s = arm.settings
    assert (s.role, s.color, s.version, arm.platform.port, s.platform) == (
        "arm",
        "blue",
        "v1",
        18081,
        "local",
    )
    assert s.run_dir == "/repo/.bluegreen/blue"
    edge = load("live", **EDGE)
    s = edge.settings
    assert (s.active_color, other(s.active_color), edge.platform.port) == (
        "blue",
        "green",
        18080,
    )
    assert s.arm_stacks == {"blue": "blue", "green": "green"}


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
    regions = '{"us-east-1": "vpc-0aaa1111:subnet-0ccc3333:subnet-0ddd4444"}'
    assert "bluegreen:armRegions belongs only in an arm stack" in problems(
        "live", **{**EDGE, "armRegions": regions}
    )


def test_a_key_without_a_default_is_not_set_until_a_stack_sets_it():
    # Pulumi.yaml does not declare keys without a default: absent means not set, never "" or 0.
    assert load(**ARM).platform.simulate == {}
    without_port = {k: v for k, v in ARM.items() if k != "port"}
    assert "bluegreen:port is not set" in problems(**without_port)
    assert 'bluegreen:port must be an integer port from 1024 to 65535, got "0"' in problems(
        **{**ARM, "port": "0"}
    )


def test_simulate_becomes_service_flags():
    local = load(**{**ARM, "simulate": "delay-ms=40,ready-status=500"}).platform
    assert local.app_args == ["--delay-ms=40", "--ready-status=500"]


def test_flip_timeout_bounds():
    assert load("live", **EDGE, flipTimeoutSeconds="30").settings.flip_timeout_s == 30
    assert "bluegreen:flipTimeoutSeconds must be a number of seconds from 1 to 300" in problems(
        "live", **EDGE, flipTimeoutSeconds="0"
    )


@pytest.mark.parametrize(
    ("name", "values", "expected"),
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
def test_a_selected_platform_that_is_not_configured_names_the_missing_key(name, values, expected):
    assert expected in problems(name, **values)


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
    nixos = load(**{**ARM, "platform": "nixos", "nodes": '["10.0.0.10"]'}).platform
    assert nixos.nodes == ("10.0.0.10",) and nixos.app_port == 8000
    dns = load("live", **EDGE, dnsProvider="rfc2136", dnsZone="Bluegreen.Test.").settings.dns
    assert (dns.zone, dns.ttl, dns.server) == ("bluegreen.test", 30, "127.0.0.1:18053")


# --- typed roles, the registry, defaults from Pulumi.yaml -------------------------------------


def test_each_role_has_only_its_own_fields():
    from bluegreen.config import ArmSettings, EdgeSettings

    arm, edge = load(**ARM).settings, load("live", **EDGE).settings
    assert isinstance(arm, ArmSettings) and isinstance(edge, EdgeSettings)
    assert (arm.role, edge.role) == ("arm", "edge")
    for field in ("active_color", "arm_stacks", "canary_weight", "maintenance", "hold", "dns"):
        assert not hasattr(arm, field), field
    for field in ("color", "version", "live_stack", "replicas"):
        assert not hasattr(edge, field), field
    assert edge.arm_stacks == {"blue": "blue", "green": "green"}
    assert edge.weights == {"blue": 100, "green": 0}


def test_the_tooling_reads_the_shared_keys_of_a_stack_file():
    """`config.from_stack_config`, the contract the operator's command codes against."""
    from bluegreen.config import Hold, from_stack_config
    from tests.support.sandbox import ROOT

    arm = from_stack_config({**ARM, "liveStack": "prod/live"}, "blue", ROOT)
    assert (arm.color, arm.version, arm.live_stack, arm.health_path) == (
        "blue",
        "v1",
        "prod/live",
        "/healthz/ready",
    )
    edge = from_stack_config({**EDGE, "canaryWeight": "25", "greenStack": "g2"}, "live", ROOT)
    assert (edge.active_color, edge.canary_weight, edge.health_path) == (
        "blue",
        25,
        "/healthz/ready",
    )
    assert edge.arm_stacks == {"blue": "blue", "green": "g2"}
    assert edge.hold == Hold(
        confidence=0.95,
        latency_tolerance=0.15,
        latency_floor_ms=1.0,
        error_tolerance=0.01,
        min_requests=20,
        max_s=120,
        critical=("latency", "errors"),
        dry_run=(),
        weights=(("latency", 50.0), ("errors", 50.0)),
        pass_score=95,
        marginal_score=75,
    )
    # The platform's keys are not the tooling's business: a missing VPC does not stop it.
    assert from_stack_config({**EDGE, "platform": "aws"}, "live", ROOT).active_color == "blue"


def project_copy(tmp_path, **defaults: str) -> str:
    """A project directory whose Pulumi.yaml declares other defaults for some keys."""
    import yaml

    from tests.support.sandbox import ROOT

    with open(f"{ROOT}/Pulumi.yaml") as f:
        project = yaml.safe_load(f)
    for key, value in defaults.items():
        project["config"][f"bluegreen:{key}"]["default"] = value
    (tmp_path / "Pulumi.yaml").write_text(yaml.safe_dump(project))
    return str(tmp_path)


def test_defaults_come_from_pulumi_yaml(tmp_path):
    import platforms

    project = project_copy(tmp_path, appName="cart", edgePort=19090, holdMinRequests=50)
    live = platforms.from_stack_config(EDGE, "live", project)
    assert (live.settings.app_name, live.platform.port, live.settings.hold.min_requests) == (
        "cart",
        19090,
        50,
    )
    dns = {"dnsProvider": "rfc2136", "dnsZone": "bluegreen.test"}
    project = project_copy(tmp_path, dnsServer="127.0.0.1:25353", dnsTtl=10)
    d = platforms.from_stack_config({**EDGE, **dns}, "live", project).settings.dns
    assert (d.server, d.ttl) == ("127.0.0.1:25353", 10)


def test_no_default_is_written_in_the_code():
    """Without Pulumi.yaml's defaults a declared key is missing, not quietly filled in."""
    import platforms

    got = {**ARM}
    with pytest.raises(ConfigError) as err:
        platforms.load(got.get, "blue", "/repo")
    for key in ("platform", "appName", "healthPath"):
        assert f"bluegreen:{key} is not set: Pulumi.yaml declares its default" in str(err.value)


def keys_read(name: str, **values: str) -> set[str]:
    """Every key the program reads for a stack with `values`, platform keys included."""
    import platforms
    from bluegreen import config
    from tests.support.sandbox import ROOT

    seen: set[str] = set()
    defaults = config.with_defaults(values, ROOT)

    def get(key: str) -> str | None:
        seen.add(key)
        return defaults(key)

    try:
        platforms.load(get, name, "/repo")
    except ConfigError:
        pass  # the platforms' required keys are not all set here: only what is read counts
    return seen


def test_every_key_the_program_reads_is_in_pulumi_yaml():
    """Declared with its default, or listed as "(no default)": never both, never neither."""
    import re

    import platforms
    from bluegreen import config
    from tests.support.sandbox import ROOT

    text = open(f"{ROOT}/Pulumi.yaml").read()
    declared = set(config.project_defaults(ROOT))
    undeclared = set(re.findall(r"# bluegreen:(\w+) \(no default\)", text))
    assert declared.isdisjoint(undeclared), declared & undeclared
    read = set()
    for platform in platforms.REGISTRY:
        dns = {"dnsProvider": "route53"}
        read |= keys_read("blue", **ARM, platform=platform)
        read |= keys_read("live", **EDGE, **dns, platform=platform, canaryWeight="0")
        read |= keys_read("data", **DATA, platform=platform)
    read |= tooling_keys()
    assert read - declared - undeclared == set()
    assert (declared | undeclared) - read == set(), "keys in Pulumi.yaml that nothing reads"


def tooling_keys() -> set[str]:
    """Keys only the `bluegreen` command reads, from the edge stack's config: the program never
    reads them, so `keys_read` cannot see them."""
    from cutover import notify

    return {notify.KEY.removeprefix("bluegreen:")}


def test_an_unknown_platform_names_the_registered_ones(monkeypatch):
    import platforms

    message = problems(**{**ARM, "platform": "heroku"})
    assert message.startswith(
        'bluegreen:platform must be one of local, nixos, aws, kubernetes, got "heroku"'
    )
    monkeypatch.setitem(platforms.REGISTRY, "fly", "platforms.local")
    assert "one of local, nixos, aws, kubernetes, fly," in problems(**{**ARM, "platform": "x"})


def test_a_platform_is_one_module_and_one_registry_entry(monkeypatch):
    """A platform registered here reads its own keys through the same Reader: its problems are
    reported with the shared keys' problems."""
    import sys
    import types
    from dataclasses import dataclass

    import platforms
    from platforms.base import ArmPlatform

    @dataclass(frozen=True)
    class FlyArm(ArmPlatform):
        region: str

        @classmethod
        def from_config(cls, read):
            return cls(read.required("region", ": the fly platform needs a region"))

        def arm(self, name, parent, s):
            raise NotImplementedError

    module = types.ModuleType("fly_adapter")
    module.ARM, module.EDGE = FlyArm, None
    monkeypatch.setitem(sys.modules, "fly_adapter", module)
    monkeypatch.setitem(platforms.REGISTRY, "fly", "fly_adapter")
    assert load(**{**ARM, "platform": "fly", "region": "ams"}).platform == FlyArm("ams")
    message = problems(**{**ARM, "platform": "fly", "version": "v 1"})
    assert "bluegreen:version must be" in message
    assert "bluegreen:region is not set: the fly platform needs a region" in message


@pytest.mark.parametrize(
    ("platform", "values", "expected"),
    [
        ("local", {"bindAddress": "10.0.0.1"}, "bluegreen:bindAddress must be a loopback"),
        ("nixos", {"nodes": '["10.0.0.10"]', "sshPort": "0"}, "bluegreen:sshPort must be"),
        ("aws", {"subnetIds": '["subnet-0aaa1111"]'}, "bluegreen:subnetIds must list"),
        ("kubernetes", {"kubeContext": "kind", "namespace": "Shop"}, "bluegreen:namespace must"),
    ],
)
def test_each_platform_validates_its_own_keys_through_the_registry(platform, values, expected):
    assert expected in problems(**{**ARM, "platform": platform, **values})


@pytest.mark.parametrize(
    "values, expected",
    [
        ({"shadow": "101"}, 'bluegreen:shadow must be an integer from 0 to 100, got "101"'),
        ({"shadow": "10%"}, 'bluegreen:shadow must be an integer from 0 to 100, got "10%"'),
        ({"shadowWrites": "yes"}, 'bluegreen:shadowWrites must be true or false, got "yes"'),
        ({"cache": "on"}, 'bluegreen:cache must be true or false, got "on"'),
        (
            {"cacheWarmPaths": '["/"]'},
            'bluegreen:cacheWarmPaths must be unset while bluegreen:cache is false, got "/"',
        ),
        (
            {"cache": "true", "cacheWarmPaths": '["/a b"]'},
            "bluegreen:cacheWarmPaths must be an absolute URL path",
        ),
        ({"rateLimit": "-1"}, 'bluegreen:rateLimit must be an integer from 0 to 1000000, got "-1"'),
        (
            {"limitWhen": "flip"},
            'bluegreen:limitWhen must be "always" or "hold", got "flip"',
        ),
        (
            {"limitRetryAfter": "0"},
            'bluegreen:limitRetryAfter must be an integer from 1 to 3600, got "0"',
        ),
    ],
)
def test_edge_features_name_the_key_the_value_and_what_is_allowed(values, expected):
    assert expected in problems(**{**EDGE, **values})


def test_edge_features_parse():
    s = load(
        "live",
        **EDGE,
        cache="true",
        cacheWarmPaths="/,/assets/app.js",
        shadow="10",
        rateLimit="500",
        limitWhen="hold",
    ).settings
    assert s.cache.warm_paths == ("/", "/assets/app.js") and s.cache.max_size_mb == 256
    assert (s.shadow.percent, s.shadow.writes) == (10, False)
    assert s.backpressure.enabled and s.backpressure.when == "hold"
    assert not load("live", **EDGE).settings.backpressure.enabled


# --- the hold's judge --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "holdConfidence",
            "0.5",
            'bluegreen:holdConfidence must be a number from 0.8 to 0.999, got "0.5"',
        ),
        (
            "holdLatencyTolerance",
            "fast",
            "bluegreen:holdLatencyTolerance must be a number from 0 to 10",
        ),
        (
            "holdErrorTolerance",
            "0.9",
            'bluegreen:holdErrorTolerance must be a number from 0 to 0.5, got "0.9"',
        ),
        ("holdMaxSeconds", "0", "bluegreen:holdMaxSeconds must be an integer from 1 to 86400"),
        (
            "holdCritical",
            "latency,cpu",
            "bluegreen:holdCritical must be metric names separated by commas, of latency, errors, "
            'got "latency,cpu"',
        ),
        (
            "holdDryRun",
            "errors,errors",
            "bluegreen:holdDryRun must be metric names separated by commas",
        ),
        ("holdDryRun", "latency,errors", "a hold where every metric is a dry run decides nothing"),
        (
            "holdWeights",
            "latency=50,errors=0",
            "bluegreen:holdWeights must be each metric once with a weight above 0, e.g. "
            '"latency=50,errors=50", got "latency=50,errors=0"',
        ),
        (
            "holdP95Ratio",
            "1.15",
            "bluegreen:holdP95Ratio must be unset: the hold's judge replaced it with "
            'bluegreen:holdLatencyTolerance, got "1.15"',
        ),
        (
            "holdMarginalScore",
            "99",
            'bluegreen:holdMarginalScore must be at most bluegreen:holdPassScore (95), got "99"',
        ),
    ],
)
def test_a_bad_hold_setting_names_the_key_the_value_and_what_is_allowed(key, value, expected):
    assert expected in problems("live", **EDGE, **{key: value})


def test_hold_settings_a_team_grows_into_parse():
    hold = load(
        "live",
        **EDGE,
        holdDryRun="latency",
        holdCritical="errors",
        holdWeights="latency=20,errors=80",
        holdMaxSeconds="300",
    ).settings.hold
    assert (hold.dry_run, hold.critical, hold.max_s) == (("latency",), ("errors",), 300)
    assert dict(hold.weights) == {"latency": 20.0, "errors": 80.0}
