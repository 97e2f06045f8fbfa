"""The data stack on the local platform, under the real CLI with a real PostgreSQL: `pulumi up -s
data` starts the server and migrates it; an arm with bluegreen:schemaRevision serves items from it
through its own endpoint; a second `up` changes nothing; a revision not in app/migrations, a
target before what is applied and a missing data stack are refused before anything changes.

One project, one test: every step builds on the one before (two deploys of the data stack and an
update that changes nothing, one deploy of an arm; each refusal costs a program run: about 30 s
in all). With the policy pack, as users run it: each deploy here passes its data rules (their
refusals are its own tests'); the refusals here are the program's own.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from bluegreen import probe
from cutover.workspace import PulumiError
from tests.support.sandbox import LocalProject

REVISIONS = "(0001_items, 0002_items_name, 0003_drop_title)"


def refused(project: LocalProject, stack: str) -> str:
    with pytest.raises(PulumiError) as err:
        project.ws.up(stack)
    return err.value.output


def post(url: str, body: dict) -> probe.Answer:
    data = json.dumps(body).encode()
    return probe.request(url, "POST", headers={"Content-Type": "application/json"}, body=data)


def titles(url: str) -> list[str]:
    answer = probe.request(url + "/items")
    assert answer.status == 200, answer.describe()
    return [row["title"] for row in json.loads(answer.body)]


def server_pid(project: LocalProject) -> str:
    with open(os.path.join(project.dir, ".bluegreen", "data", "postgres.pid")) as f:
        return f.read().split()[0]


def test_data_stack_migrates_serves_an_arm_and_refuses_what_would_break_it(data_project):
    project = data_project
    ws = project.ws
    ws.up("data")
    out = ws.outputs("data")
    assert out["dsn"] == "[secret]"
    assert out["schema"]["current"] == "0001_items"
    assert out["schema"]["applied"] == ["0001_items"]
    assert out["schema"]["phases"]["0003_drop_title"] == "contract"
    pid = server_pid(project)

    # The arm that needs 0001_items reads the data stack and serves its items (shape v1).
    ws.config_set("blue", "bluegreen:schemaRevision", "0001_items")
    ws.up("blue")
    assert ws.outputs("blue")["schemaRevision"] == "0001_items"
    arm = project.arm_url("blue")
    written = post(arm + "/items", {"title": "first"})
    assert written.status == 201, written.describe()
    assert written.json()["title"] == "first"
    assert titles(arm) == ["first"]
    dsn_file = os.path.join(project.dir, ".bluegreen", "blue", "blue.dsn")
    assert stat.S_IMODE(os.stat(dsn_file).st_mode) == 0o600
    with open(os.path.join(project.dir, ".bluegreen", "blue", "blue.pid")) as f:
        with open(f"/proc/{f.read().split()[0]}/cmdline", "rb") as cmd:
            argv = cmd.read().decode()
    with open(dsn_file) as f:
        password = f.read().split(":")[2].split("@")[0]
    assert "--items-shape=v1" in argv and password not in argv

    # A second up changes nothing: no initdb again, the same server, nothing migrated.
    ws.up("data", expect_no_changes=True)
    assert server_pid(project) == pid

    # A revision app/migrations does not have: refused before anything changes.
    ws.config_set("data", "bluegreen:schemaRevision", "0004_nope")
    assert (
        "bluegreen:schemaRevision must be one of the revisions in app/migrations "
        f'{REVISIONS}, got "0004_nope"'
    ) in refused(project, "data")
    # An arm whose data stack does not exist: named, with the fix.
    ws.config_set("green", "bluegreen:schemaRevision", "0002_items_name")
    ws.config_set("green", "bluegreen:dataStack", "dta")
    missing = 'bluegreen:dataStack is "dta", but stack "organization/bluegreen/dta" does not exist'
    assert missing in refused(project, "green")

    # The expand 0002_items_name: the v1 arm goes on reading and writing through it.
    ws.config_set("data", "bluegreen:schemaRevision", "0002_items_name")
    ws.up("data")
    assert ws.outputs("data")["schema"]["applied"] == ["0001_items", "0002_items_name"]
    assert post(arm + "/items", {"title": "second"}).status == 201
    assert titles(arm) == ["first", "second"]

    # Back to 0001_items: refused before anything changes; the database stays at 0002.
    ws.config_set("data", "bluegreen:schemaRevision", "0001_items")
    assert (
        'bluegreen:schemaRevision is "0001_items", but the database of stack "data" is at '
        "0002_items_name already"
    ) in refused(project, "data")
    assert ws.outputs("data")["schema"]["current"] == "0002_items_name"
    assert server_pid(project) == pid
    assert titles(arm) == ["first", "second"]
