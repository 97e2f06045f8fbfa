"""The nixos data stack and the nixos arms that read it, without a host: the keys it refuses, the
data node it renders, what a deploy sends (the password and the DSN as owner-only files, never
in a config), and that an arm without bluegreen:schemaRevision declares what it always did.
tests/integration/test_nixos_data.py evaluates the Nix for real."""

from __future__ import annotations

import io
import tarfile

import pulumi
import pytest
from pulumi.runtime import rpc

from bluegreen import schema
from bluegreen.config import ConfigError
from platforms.local import local_data
from platforms.nixos import bundle, host, nixos_data, render, ssh_deploy
from tests.support.data_mocks import DataMocks
from tests.support.mocks import install, stack
from tests.support.nixos_cases import DATA_PASSWORD_FILE as PASSWORD_FILE
from tests.support.nixos_cases import EVIL, arm_config, data_config, props

PASSWORD = "s3cret pw/@'\""
DSN = "postgresql://bluegreen:pw@10.0.0.20:15432/shop"
DATA_OUTPUTS = {
    "dsn": DSN,
    "schema": {"current": "0002_items_name", "applied": ["0001_items", "0002_items_name"]},
}


def data_stack(**values):
    return stack(
        "data",
        platform="nixos",
        role="data",
        schemaRevision="0002_items_name",
        databasePassword="x",
        **{"dataNode": "10.0.0.20", **values},
    )


def problems(**values) -> list[str]:
    with pytest.raises(ConfigError) as err:
        data_stack(**values)
    return err.value.problems


# --- the keys ----------------------------------------------------------------------------------


def test_a_nixos_data_stack_reads_its_node_port_and_clients():
    loaded = data_stack(databasePort="15999", dataClients='["10.0.1.0/24", "fd00:1::/64"]')
    p = loaded.platform
    assert isinstance(p, nixos_data.NixosData)
    assert (p.node, p.port, p.clients) == ("10.0.0.20", 15999, ("10.0.1.0/24", "fd00:1::/64"))
    # Pulumi.yaml's default: the private ranges.
    assert data_stack().platform.clients == (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fd00::/8",
    )


def test_the_data_node_is_required_and_must_be_an_address():
    (found,) = [p for p in problems(dataNode=None) if "dataNode" in p]
    assert found.startswith("bluegreen:dataNode is not set: the nixos platform needs the address")
    assert problems(dataNode="10.0.0.20; rm -rf /") == [
        'bluegreen:dataNode must be an IP address or host name, got "10.0.0.20; rm -rf /"'
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            '["10.0.0.5/24"]',
            "bluegreen:dataClients must be a JSON list of networks such as 10.0.0.0/24: the arm "
            "nodes' and the one of the machine that runs `pulumi up -s data` (the migration), "
            'each without host bits, got "10.0.0.5/24"',
        ),
        ('["arms"]', 'got "arms"'),
        ('["0.0.0.0/0"]', 'bluegreen:dataClients is "0.0.0.0/0", but that is every address'),
        ('["::/0"]', 'bluegreen:dataClients is "::/0", but that is every address'),
        ("[]", "bluegreen:dataClients is [], but nothing could connect to the database"),
    ],
)
def test_data_clients_are_networks_and_never_everyone(value, message):
    (found,) = problems(dataClients=value)
    assert message in found
    assert "(the migration)" in found  # what is allowed, in every message


def test_a_nixos_arm_may_read_the_data_stack():
    loaded = stack(
        "green",
        platform="nixos",
        role="arm",
        color="green",
        version="v2",
        nodes='["10.0.0.11"]',
        schemaRevision="0002_items_name",
    )
    assert loaded.settings.schema.revision == "0002_items_name"


def test_the_role_is_the_local_platforms():
    assert nixos_data.ROLE == local_data.ROLE


# --- rendering ---------------------------------------------------------------------------------


def test_the_data_node_sets_the_module_and_names_the_password_file_only():
    text = data_config()
    assert "imports = [ ./nixos/modules/data-node.nix ];" in text
    for line in (
        'listenAddress = "10.0.0.20";',
        "port = 15432;",
        'database = "shop";',
        'role = "bluegreen";',
        f'passwordFile = "{PASSWORD_FILE}";',
        'clients = [ "10.0.0.0/24" ];',
    ):
        assert f"    {line}\n" in text


@pytest.mark.parametrize("value", EVIL)
def test_the_data_node_refuses_what_could_break_out(value):
    for kw in (
        {"node": value},
        {"database": value},
        {"stack": value},
        {"password_file": value},
        {"clients": (value,)},
    ):
        with pytest.raises(ValueError, match="refusing to render"):
            data_config(**kw)


def test_the_dsn_puts_the_password_in_escaped_and_an_ipv6_node_in_brackets():
    assert nixos_data.dsn("fd00::20", 15432, "shop", "a b/@") == (
        "postgresql://bluegreen:a%20b%2F%40@[fd00::20]:15432/shop"
    )


# --- what a deploy sends -----------------------------------------------------------------------


def tar_of(call) -> dict[str, tuple[int, str]]:
    with tarfile.open(fileobj=io.BytesIO(call[1])) as tar:
        return {m.name: (m.mode, tar.extractfile(m).read().decode()) for m in tar.getmembers()}


SECRET_PROPS = {
    "secretFiles": {"shop-data.password": PASSWORD},
    "onSecretChange": "systemctl restart bluegreen-data-password.service",
}


SECRETS = ssh_deploy.secrets_script("/var/lib/bluegreen/secrets")
COPY = ssh_deploy.copy_script("/etc/nixos/bluegreen")


def test_secrets_ship_owner_only_away_from_the_config_and_take_effect_after_the_switch(
    ssh_calls,
):
    provider = host.HostProvider()
    first = props(data_config(), fileName="shop-data.nix", **SECRET_PROPS)
    created = provider.create(first).outs
    assert [c[0][-1] for c in ssh_calls] == [
        SECRETS,
        COPY,
        "nixos-rebuild switch",
        "systemctl restart bluegreen-data-password.service",
    ]
    assert tar_of(ssh_calls[0]) == {"shop-data.password": (0o600, PASSWORD)}
    files = tar_of(ssh_calls[1])
    assert "shop-data.password" not in files and PASSWORD not in repr(files)
    assert files["shop-data.nix"][0] == 0o644
    # The digest (a plain output) does not depend on the secret.
    assert created["digest"] == ssh_deploy.digest(ssh_deploy.files_of(first))
    assert PASSWORD not in repr({k: v for k, v in created.items() if k != "secretFiles"})

    # Nothing changed: nothing to do, nothing run.
    assert provider.diff("id", created, first).changes is False
    provider.update("id", created, first)
    assert len(ssh_calls) == 4

    # A new password alone: a change, deployed (the config as it was) and taken in.
    rotated = {**first, "secretFiles": {"shop-data.password": "new"}}
    assert provider.diff("id", created, rotated).changes is True
    updated = provider.update("id", created, rotated).outs
    assert [c[0][-1] for c in ssh_calls[4:]] == [
        SECRETS,
        COPY,
        "nixos-rebuild switch",
        "systemctl restart bluegreen-data-password.service",
    ]
    assert tar_of(ssh_calls[4]) == {"shop-data.password": (0o600, "new")}

    # A new config with the same password: switched, the password's unit left alone.
    moved = {**rotated, "config": data_config(port=15433)}
    provider.update("id", updated, moved)
    assert [c[0][-1] for c in ssh_calls[8:]] == [SECRETS, COPY, "nixos-rebuild switch"]


def test_the_secrets_go_to_a_root_only_directory_outside_etc_nixos():
    script = ssh_deploy.secrets_script(ssh_deploy.SECRETS_DIR)
    assert ssh_deploy.SECRETS_DIR == "/var/lib/bluegreen/secrets"
    assert not ssh_deploy.SECRETS_DIR.startswith(ssh_deploy.REMOTE_DIR.rsplit("/", 1)[0])
    assert "umask 077;" in script and 'chmod 0700 "$d";' in script
    assert 'mktemp -d "$d/.incoming.XXXXXX"' in script  # staged where only root can look
    with pytest.raises(ssh_deploy.DeployError, match="refusing the secret file name"):
        ssh_deploy.secrets_of({"secretFiles": {"../etc/shadow": "x"}})


def test_a_host_without_secrets_deploys_as_before(ssh_calls):
    host.HostProvider().create(props(arm_config()))
    assert len(ssh_calls) == 2
    assert {mode for mode, _ in tar_of(ssh_calls[0]).values()} == {0o644}


def test_a_failed_secret_change_says_so(ssh_calls, monkeypatch):
    import subprocess

    def failing(argv, stdin):
        ssh_calls.append((argv, stdin))
        code = 1 if argv[-1].startswith("systemctl") else 0
        return subprocess.CompletedProcess(argv, code, b"", b"role does not exist")

    monkeypatch.setattr(ssh_deploy, "run", failing)
    with pytest.raises(ssh_deploy.DeployError, match="switched, but `systemctl restart"):
        host.HostProvider().create(props(data_config(), fileName="shop-data.nix", **SECRET_PROPS))


def test_destroy_empties_the_config_then_removes_the_secrets(ssh_calls):
    provider = host.HostProvider()
    created = provider.create(props(data_config(), fileName="shop-data.nix", **SECRET_PROPS)).outs
    provider.delete("id", created)
    copy, switch, remove = ssh_calls[4:]
    assert tar_of(copy) == {"shop-data.nix": (0o644, host.TOMBSTONE)}
    assert switch[0][-1] == "nixos-rebuild switch"
    assert remove[0][-1] == f"rm -f -- {PASSWORD_FILE}"


# --- under the mocks ---------------------------------------------------------------------------


class Mocks(DataMocks):
    """The data stack's outputs; a host's digest and what the migration applied, as their
    providers would answer."""

    def state(self, args):
        state = dict(args.inputs)
        if args.typ == "pulumi-python:dynamic/nixos:Host":
            state["digest"] = "d"
        if args.typ == "pulumi-python:dynamic/data:Migration":
            state.update(applied=["0001_items", "0002_items_name"], current="0002_items_name")
        return state


@pytest.fixture
def secrets():
    pulumi.runtime.set_all_config(
        {"bluegreen:sshKey": "PRIVATE", "bluegreen:databasePassword": PASSWORD},
        ["bluegreen:sshKey", "bluegreen:databasePassword"],
    )
    yield
    pulumi.runtime.set_all_config({}, [])


def plain(value):
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


def test_the_data_stack_deploys_postgresql_to_the_data_node(secrets, monkeypatch):
    from components import Data, DataArgs

    monkeypatch.setattr(schema, "lint", lambda sql: [])
    mocks = install(Mocks({}))
    loaded = data_stack()

    @pulumi.runtime.test
    def run():
        data = Data("data", DataArgs(loaded.settings, loaded.platform))

        def check(args):
            dsn = args[1]
            res = mocks.created["data-10.0.0.20"]
            assert res.typ == "pulumi-python:dynamic/nixos:Host"
            inputs = res.inputs
            assert inputs["host"] == "10.0.0.20" and inputs["fileName"] == "shop-data.nix"
            assert inputs["knownHosts"] == "/repo/.bluegreen/data/known_hosts"
            assert inputs["config"] == data_config(clients=loaded.platform.clients)
            assert "nixos/modules/data-node.nix" in inputs["bundle"]
            assert set(inputs["bundle"]) == set(bundle.files())
            # The password: a secret input, shipped as a file, never in the config.
            assert rpc.is_rpc_secret(inputs["secretFiles"])
            assert plain(inputs["secretFiles"]) == {"shop-data.password": PASSWORD}
            assert inputs["onSecretChange"] == "systemctl restart bluegreen-data-password.service"
            assert PASSWORD not in repr({k: v for k, v in inputs.items() if k != "secretFiles"})
            migration = mocks.created["data-migration"].inputs
            assert plain(migration["dsn"]) == nixos_data.dsn("10.0.0.20", 15432, "shop", PASSWORD)
            assert dsn == plain(migration["dsn"])
            assert migration["database"] == "nixos:10.0.0.20:15432/shop@postgresql_16"
            assert migration["target"] == "0002_items_name"

        return pulumi.Output.all(data.urn, data.dsn, data.schema).apply(check)

    run()


ARM = {
    "platform": "nixos",
    "role": "arm",
    "color": "green",
    "version": "v2",
    "nodes": '["10.0.0.11", "10.0.0.13"]',
}


def build(loaded, mocks):
    from components import Arm, ArmArgs, data_from_stack

    s = loaded.settings
    return Arm(s.color, ArmArgs(s, loaded.platform, data=data_from_stack(s)))


@pytest.mark.parametrize(("revision", "shape"), [("0001_items", "v1"), ("0002_items_name", "v2")])
def test_an_arm_with_a_revision_gets_the_dsn_as_a_secret_file(secrets, revision, shape):
    mocks = install(Mocks({"organization/bluegreen/data": DATA_OUTPUTS}))
    loaded = stack("green", **ARM, schemaRevision=revision)

    @pulumi.runtime.test
    def run():
        arm = build(loaded, mocks)

        def check(_):
            for node in ("10.0.0.11", "10.0.0.13"):
                inputs = mocks.created[f"green-{node}"].inputs
                lines = (
                    '    dsnFile = "/var/lib/bluegreen/secrets/shop-green.dsn";\n'
                    f'    itemsShape = "{shape}";\n'
                )
                assert inputs["config"] == render.arm_node(
                    stack="green",
                    node=node,
                    color="green",
                    version="v2",
                    port=8000,
                    health_path="/healthz/ready",
                    data=lines,
                )
                assert rpc.is_rpc_secret(inputs["secretFiles"])
                assert plain(inputs["secretFiles"]) == {"shop-green.dsn": DSN}
                assert inputs["onSecretChange"] == "systemctl restart bluegreen-arm.service"
                assert "pw" not in inputs["config"]
            assert mocks.created["green"].inputs["schema"]["needs"] == revision

        return pulumi.Output.all(arm.urn, arm.endpoint).apply(check)

    run()


def test_an_arm_without_one_declares_what_it_always_did(secrets):
    mocks = install(Mocks({"organization/bluegreen/data": DATA_OUTPUTS}))
    loaded = stack("green", **ARM)

    @pulumi.runtime.test
    def run():
        arm = build(loaded, mocks)

        def check(_):
            assert sorted(mocks.created) == [
                "green",
                "green-10.0.0.11",
                "green-10.0.0.13",
            ]
            for node in ("10.0.0.11", "10.0.0.13"):
                inputs = mocks.created[f"green-{node}"].inputs
                assert set(inputs) == {
                    "host",
                    "user",
                    "port",
                    "knownHosts",
                    "remoteDir",
                    "rebuild",
                    "sshKey",
                    "fileName",
                    "config",
                    "bundle",
                    "confirm",
                    "__provider",
                }
                assert inputs["config"] == arm_config(node=node, version="v2", color="green")

        return pulumi.Output.all(arm.urn, arm.endpoint).apply(check)

    run()
