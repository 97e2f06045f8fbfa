"""The nixos data node and an arm node that reads it, evaluated for real (nix-instantiate with
nixos/tests/eval-node.nix, as tests/integration/test_nixos.py does), and the data node's script
that makes the role, its password and the database run against a real PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from urllib.parse import urlsplit

import psycopg
import pytest

from bluegreen import config
from platforms.nixos import bundle, nixos_data, render, ssh_deploy
from tests.support import postgres
from tests.support.nixos_cases import DATA_PASSWORD_FILE as PASSWORD_FILE
from tests.support.nixos_cases import ROOT, arm_config, data_config
from tests.support.nixos_env import (
    app_package_script,
    evaluate,
    evaluation_error,
    nix,
    node_file,
    on_host,
)

DSN_FILE = "/var/lib/bluegreen/secrets/shop-blue.dsn"


def data_node(nix_env, tmp_path, **kw) -> dict:
    """The data node evaluated, its clients an IPv4 and an IPv6 network unless told."""
    kw.setdefault("clients", ("10.0.0.0/24", "fd00::/8"))
    return evaluate(nix_env, on_host(tmp_path, "shop-data.nix", data_config(**kw)))


def test_the_data_node_runs_postgresql_for_the_arms_networks_only(nix_env, tmp_path):
    result = data_node(nix_env, tmp_path)
    assert result["failedAssertions"] == []
    pg = result["config"]["services"]["postgresql"]
    assert pg["enable"] is True
    assert pg["package"].endswith("-postgresql-16")
    assert pg["settings"] == {
        "listen_addresses": "10.0.0.20",
        "port": 15432,
        "password_encryption": "scram-sha-256",
    }
    assert pg["authentication"].splitlines() == [
        'host "shop" "bluegreen" 10.0.0.0/24 scram-sha-256',
        'host "shop" "bluegreen" fd00::/8 scram-sha-256',
    ]
    assert result["config"]["networking"]["firewall"]["allowedTCPPorts"] == [15432]


def test_the_password_reaches_postgresql_only_as_a_credential(nix_env, tmp_path):
    unit = data_node(nix_env, tmp_path)["config"]["systemd"]["services"]
    unit = unit["bluegreen-data-password"]
    service = unit["serviceConfig"]
    # A string path on the node, never a Nix path the build would copy to the store.
    assert service["LoadCredential"] == [f"password:{PASSWORD_FILE}"]
    assert (service["Type"], service["User"]) == ("oneshot", "postgres")
    assert unit["requires"] == ["postgresql.service"] and unit["after"] == ["postgresql.service"]
    assert unit["wantedBy"] == ["multi-user.target"]
    assert '`cat "$CREDENTIALS_DIRECTORY/password"`' in unit["script"]
    assert nixos_data.PASSWORD_UNIT == "bluegreen-data-password.service"


def test_the_data_modules_defaults_are_the_projects(nix_env, tmp_path):
    body = (
        'services.bluegreen-data = { enable = true; listenAddress = "10.0.0.20"; '
        f'passwordFile = "{PASSWORD_FILE}"; }};'
    )
    options = evaluate(nix_env, node_file(tmp_path, "data-node", body))["options"]
    data = options["services"]["bluegreen-data"]
    defaults = config.project_defaults(ROOT)
    assert data["port"] == int(defaults["databasePort"])
    assert data["clients"] == json.loads(defaults["dataClients"])
    assert (data["role"], data["database"]) == (nixos_data.ROLE, defaults["appName"])
    assert data["package"].endswith(f"-{nixos_data.PACKAGE.replace('_', '-')}")


def data_module(tmp_path, setting: str) -> str:
    """A hand-written data node: the required options, `setting` in place of its own."""
    required = {"listenAddress": '"10.0.0.20"', "passwordFile": f'"{PASSWORD_FILE}"'}
    name = setting.split("=", 1)[0].strip()
    kept = " ".join(f"{k} = {v};" for k, v in required.items() if k != name)
    body = f"services.bluegreen-data = {{ enable = true; {kept} {setting} }};"
    return node_file(tmp_path, "data-node", body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("clients = [ ];", "services.bluegreen-data.clients is empty"),
        ('listenAddress = "127.0.0.1";', "is the loopback address 127.0.0.1"),
    ],
)
def test_the_data_module_refuses_a_database_nobody_could_reach(nix_env, tmp_path, body, message):
    node = data_module(tmp_path, body)
    (found,) = evaluate(nix_env, node)["failedAssertions"]
    assert message in found


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("passwordFile", "./shop-data.password"),  # a Nix path: it would land in the store
        ("passwordFile", '"/run/secrets/pw; rm -rf /"'),
        ("clients", '[ "10.0.0.0/24 trust" ]'),
        ("database", '"shop\\" all"'),
        ("listenAddress", '"10.0.0.20\'; DROP"'),
    ],
)
def test_the_data_module_refuses_what_would_inject(nix_env, tmp_path, option, value):
    node = data_module(tmp_path, f"{option} = {value};")
    message = evaluation_error(nix_env, node)
    assert f"services.bluegreen-data.{option}" in message and "is not of type" in message


def test_the_script_makes_the_role_its_password_and_the_database_for_real(nix_env, tmp_path):
    """The unit's script, as the module writes it, against a real PostgreSQL (psql over the
    superuser's connection standing in for the local socket): the role can then log in over TCP
    with the password, owns the database, is no superuser; run again with a new password, only
    the new one works."""
    unit = data_node(nix_env, tmp_path)["config"]["systemd"]["services"]
    script = unit["bluegreen-data-password"]["script"]
    credentials = tempfile.mkdtemp(prefix="bluegreen-creds-")
    try:
        with postgres.server() as admin:
            u = urlsplit(admin)
            env = {
                "PATH": f"{postgres.bindir()}:/usr/bin:/bin",
                "CREDENTIALS_DIRECTORY": credentials,
                "PGHOST": u.hostname,
                "PGPORT": str(u.port),
                "PGUSER": u.username,
                "PGPASSWORD": u.password,
            }
            for password in ("first 'pw\" $HOME `id`", "second"):
                with open(os.path.join(credentials, "password"), "w") as f:
                    f.write(password)
                done = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", script],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert done.returncode == 0, done.stderr
                assert password not in script
                dsn = nixos_data.dsn(u.hostname, u.port, "shop", password)
                with psycopg.connect(dsn, connect_timeout=5) as conn:
                    row = conn.execute(
                        "SELECT current_user, pg_get_userbyid(d.datdba), r.rolsuper, "
                        "has_database_privilege('public', 'shop', 'CONNECT') "
                        "FROM pg_database d, pg_roles r "
                        "WHERE d.datname = 'shop' AND r.rolname = current_user"
                    ).fetchone()
                    assert row == ("bluegreen", "bluegreen", False, False)
                    conn.execute("CREATE TABLE IF NOT EXISTS probe (id int)")  # the owner's
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(
                    nixos_data.dsn(u.hostname, u.port, "shop", "first"), connect_timeout=5
                )
    finally:
        shutil.rmtree(credentials, ignore_errors=True)


def test_the_secrets_script_unpacks_root_only_files_into_a_root_only_directory(tmp_path):
    """The shell a deploy runs on the host for `secretFiles`, run here on a directory of its own:
    the directory ends 0700, each file 0600 with what was sent, an older one replaced, and no
    staging directory left behind."""
    where = tmp_path / "secrets"
    where.mkdir(mode=0o755)
    (where / "shop-data.password").write_text("old")
    sent = {"shop-data.password": "new pw", "shop-blue.dsn": "postgresql://x"}
    done = subprocess.run(
        ["sh", "-c", ssh_deploy.secrets_script(str(where))],
        input=ssh_deploy.tarball(sent, 0o600),
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(where.stat().st_mode) == 0o700
    assert sorted(os.listdir(where)) == sorted(sent)
    for name, text in sent.items():
        assert (where / name).read_text() == text
        assert stat.S_IMODE((where / name).stat().st_mode) == 0o600


# --- an arm node that reads the data stack ------------------------------------------------------

DATA_LINES = f'    dsnFile = "{DSN_FILE}";\n    itemsShape = "v2";\n'


def arm_with_data(lines: str = DATA_LINES) -> str:
    return render.arm_node(
        stack="blue",
        node="10.0.0.10",
        color="blue",
        version="v2",
        port=8000,
        health_path="/healthz/ready",
        data=lines,
    )


def test_an_arm_with_a_revision_gets_its_dsn_as_a_credential(nix_env, tmp_path):
    result = evaluate(nix_env, on_host(tmp_path, "shop-blue.nix", arm_with_data()))
    assert result["failedAssertions"] == []
    service = result["config"]["systemd"]["services"]["bluegreen-arm"]["serviceConfig"]
    assert service["ExecStart"].split()[1:] == [
        "--color=blue",
        "--version=v2",
        "--host=0.0.0.0",
        "--port=8000",
        "--health-path=/healthz/ready",
        "--dsn-file=%d/dsn",
        "--items-shape=v2",
    ]
    assert service["LoadCredential"] == [f"dsn:{DSN_FILE}"]
    assert service["DynamicUser"] is True


def test_an_arm_without_one_runs_as_it_always_did(nix_env, tmp_path):
    result = evaluate(nix_env, on_host(tmp_path, "shop-blue.nix", arm_config(version="v2")))
    service = result["config"]["systemd"]["services"]["bluegreen-arm"]["serviceConfig"]
    assert "LoadCredential" not in service
    assert not any("dsn" in word or "items" in word for word in service["ExecStart"].split())
    assert result["options"]["services"]["bluegreen-arm"]["dsnFile"] is None


def test_a_dsn_file_without_an_items_shape_is_named(nix_env, tmp_path):
    lines = f'    dsnFile = "{DSN_FILE}";\n'
    result = evaluate(nix_env, on_host(tmp_path, "shop-blue.nix", arm_with_data(lines)))
    (found,) = result["failedAssertions"]
    assert "services.bluegreen-arm.dsnFile and services.bluegreen-arm.itemsShape go together" in (
        found
    )


def test_the_app_package_ships_the_apps_python_files_and_psycopg(nix_env, tmp_path):
    """server.py imports items.py from its own directory: the package copies app/'s Python
    files, exactly those (not its migrations, nor caches), and runs them with a Python that has
    psycopg."""
    words = app_package_script(nix_env).split()
    assert words[:2] == ["exec", "/python3-with-prometheus-client+psycopg/bin/python3"], words
    assert words[2].startswith("/nix/store/") and words[2].endswith("-bluegreen-app-src/server.py")
    # The same store path as a directory holding app/'s *.py files alone: nothing else went in.
    only = tmp_path / "app"
    only.mkdir()
    for name in os.listdir(os.path.join(ROOT, "app")):
        if name.endswith(".py"):
            shutil.copy(os.path.join(ROOT, "app", name), only / name)
    expr = f'"${{builtins.path {{ path = {only}; name = "bluegreen-app-src"; }}}}/server.py"'
    done = nix(nix_env, "--eval", "--json", "-E", expr)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == words[2]
    shipped = {f"app/{name}" for name in os.listdir(only)}
    assert shipped <= set(bundle.BUNDLE), "every module server.py may import reaches the host"
    with open(os.path.join(ROOT, "app", "server.py")) as f:
        source = f.read()
    for module in ("items", "idempotency", "metrics"):
        assert f"from {module} import" in source and f"app/{module}.py" in shipped
