"""Rollback-safe data (issue 24) end to end: two releases of the reference app share one
PostgreSQL through a flip, a rollback and a flip again, under users' writes and reads through the
edge, with nothing failed, lost or misread; and the policy pack refuses, before anything changes,
an arm whose schema revision is not applied, a contract while a release that needs the old shape
is deployed or may come back, and an expand that drops a column.

The real CLI and policy pack, a real PostgreSQL (the data stack), real nginx and the reference
app as processes on loopback. One project per test, each a story whose every step builds on the
one before. On a 2-core machine (with other tests running beside them) the flip story took about
60 s alone (six deploys, `bluegreen flip` with a 2 s hold, `bluegreen rollback` and a bare
`pulumi up -s live`), the refusals about 55 s (fourteen updates or previews, five refused).
"""

from __future__ import annotations

import json
import os
import re
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bluegreen import probe
from cutover.flip import flip
from cutover.results import Outcome
from cutover.rolling_back import rollback
from cutover.workspace import PulumiError
from platforms.local.process import port_in_use
from tests.support.items import Readers, Writers, columns, misread, table, versions
from tests.support.operating import operator
from tests.support.sandbox import LocalProject

SHAPES = {"blue": "title", "green": "name"}
"""What each arm answers a row with: blue runs v1 (needs 0001_items), green v2 (0002_items_name)."""


def stack_dsn(project: LocalProject) -> str:
    """The data stack's DSN (its secret output), as the arms get it."""
    args = ["stack", "output", "--stack", "data", "--show-secrets", "dsn"]
    return project.ws.run(args).stdout.strip()


def applied(project: LocalProject) -> list[str]:
    return project.ws.outputs("data")["schema"]["applied"]


def post(url: str, body: dict) -> probe.Answer:
    data = json.dumps(body).encode()
    return probe.request(url, "POST", headers={"Content-Type": "application/json"}, body=data)


def refused(step, stack: str) -> str:
    """What `pulumi up` or `pulumi preview` of `stack` said, refused."""
    with pytest.raises(PulumiError) as err:
        step(stack)
    return err.value.output


def test_both_releases_read_and_write_one_table_through_flip_rollback_and_flip(data_project):
    """Blue (v1, 0001_items) live; the expand 0002_items_name and green (v2) deployed under
    users' load; then `bluegreen flip green`, `bluegreen rollback`, and to green again by a bare
    `pulumi up -s live`. Every write is acknowledged (retried with its key after a 503, as a
    client does), every acknowledged row is in the table once, and every row reads as written
    through both releases."""
    project, ws = data_project, data_project.ws
    ws.config_set("blue", "bluegreen:schemaRevision", "0001_items")
    project.up_all(active="blue")  # data at 0001_items; blue v1; green v2 keeping no data yet
    assert project.colors(3) == ["blue"] * 3

    with (
        Writers(project.edge_url, SHAPES, writers=3, pause=0.05) as writers,
        Readers(project.edge_url, writers, readers=2, pause=0.01) as readers,
    ):
        time.sleep(1)
        # The expand under v1's writes through the edge, then the release that needs it.
        ws.config_set("data", "bluegreen:schemaRevision", "0002_items_name")
        ws.up("data")
        before_green = len(writers.written)
        ws.config_set("green", "bluegreen:schemaRevision", "0002_items_name")
        ws.up("green")
        assert ws.outputs("green")["schemaRevision"] == "0002_items_name"

        op, said = operator(project)  # `bluegreen flip green --hold 2`
        ended = flip(op, "green", hold_s=2, interval=0.5)
        assert ended.outcome is Outcome.DONE, said
        op, said = operator(project)  # `bluegreen rollback`
        back = rollback(op)
        assert back.outcome is Outcome.DONE, said
        assert project.colors(3) == ["blue"] * 3
        rolled_back = len(writers.written)
        time.sleep(0.5)
        # And to green again, as CI does: a bare `pulumi up -s live`, the pack's gate in it.
        again = len(writers.written)
        ws.config_set("live", "bluegreen:activeColor", "green")
        ws.up("live")
        assert project.colors(3) == ["green"] * 3
        time.sleep(0.5)

    # 0 failed writes: each one acknowledged, some after a retry with its key.
    assert not writers.failures, writers.failures[:5]
    written = writers.written
    by_color = writers.by_color()
    assert before_green > 10 and by_color.get("green", 0) > 10, (before_green, by_color)
    assert set(by_color) == {"blue", "green"}, by_color
    assert {w.color for w in written[rolled_back:again]} == {"blue"}  # v1 writes after v2's
    assert not readers.failures, readers.failures[:5]
    assert set(readers.reads) == {"blue", "green"}, readers.reads

    # 0 lost rows: every acknowledged row is in the table, once, with both columns as written.
    rows = {row["id"]: row for row in table(stack_dsn(project))}
    lost = [w for w in written if w.id not in rows]
    assert not lost, f"{len(lost)} acknowledged rows not in the table: {lost[:5]}"
    wrong = [(w, rows[w.id]) for w in written if rows[w.id]["title"] != w.value]
    wrong += [(w, rows[w.id]) for w in written if rows[w.id]["name"] != w.value]
    assert not wrong, wrong[:5]
    assert len(rows) == len(written), f"{len(rows) - len(written)} rows nobody was answered for"

    # Every row, whichever release wrote it, reads as written through each release's own endpoint.
    assert misread(project.arm_url("blue"), "title", written) == []
    assert misread(project.arm_url("green"), "name", written) == []

    # The evidence of each traffic change names the revision each side's release needed.
    changes = [r["schema"] for r in ws.outputs("live")["evidence"][-3:]]
    v1, v2 = (
        {"color": "blue", "needs": "0001_items"},
        {"color": "green", "needs": "0002_items_name"},
    )
    both = ["0001_items", "0002_items_name"]
    assert changes == [
        {"from": v1, "to": v2, "applied": both},
        {"from": v2, "to": v1, "applied": both},
        {"from": v1, "to": v2, "applied": both},
    ], changes


DESTRUCTIVE = '''\
    """Expand, by its mark: but it drops a column that the releases still running read.

    Revision ID: 0004_drop_created_at
    Revises: 0003_drop_title
    """

    from alembic import op

    revision = "0004_drop_created_at"
    down_revision = "0003_drop_title"
    branch_labels = None
    depends_on = None

    phase = "expand"


    def upgrade() -> None:
        op.drop_column("items", "created_at")


    def downgrade() -> None:
        raise NotImplementedError
'''


def test_the_schema_gates_refuse_what_would_break_a_release_before_anything_changes(
    data_project,
):
    """An arm needing a revision not applied; a contract while the live arm needs the old shape,
    then while a rollback to it is possible, accepted once the window is shortened; an expand
    that drops a column. Each refused with the stack, the revision and the fix, and the database
    as it was."""
    project, ws = data_project, data_project.ws
    ws.up("data")
    dsn = stack_dsn(project)

    # An arm whose release needs a revision the data stack has not applied.
    ws.config_set("green", "bluegreen:schemaRevision", "0002_items_name")
    assert (
        "Deploy to green denied: arm stack green needs schema revision 0002_items_name, which is "
        "not applied on data stack data (applied: 0001_items). Apply it first: set "
        "bluegreen:schemaRevision 0002_items_name on the data stack and `pulumi up -s data`, then "
        "`pulumi up -s green`."
    ) in refused(ws.up, "green")
    assert ws.outputs("green") == {}
    assert not port_in_use("127.0.0.1", project.ports["green"])
    assert versions(dsn) == ["0001_items"]

    # The fix, then both releases deployed, blue (v1) live with a row of its own.
    ws.config_set("data", "bluegreen:schemaRevision", "0002_items_name")
    ws.up("data")
    ws.config_set("blue", "bluegreen:schemaRevision", "0001_items")
    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in [pool.submit(ws.up, color) for color in ("blue", "green")]:
            done.result()
    ws.up("live")
    kept = post(project.edge_url + "items", {"title": "kept", "name": "kept"})
    assert kept.status == 201 and kept.color == "blue", kept.describe()
    shape = ["id", "title", "created_at", "name"]
    assert columns(dsn) == shape

    # A contract while the live arm needs the shape it removes.
    ws.config_set("data", "bluegreen:schemaRevision", "0003_drop_title")
    assert (
        "Contract revision 0003_drop_title on data stack data denied: arm stack blue needs schema "
        "revision 0001_items, before 0002_items_name, whose old shape 0003_drop_title removes. "
        "Arm blue takes traffic: deploy the new release (with bluegreen:schemaRevision "
        "0002_items_name or later) to the other arm, move traffic to it, then deploy it to blue "
        "too (`pulumi up -s blue`)."
    ) in refused(ws.up, "data")
    assert versions(dsn) == ["0002_items_name"] and columns(dsn) == shape
    assert applied(project) == ["0001_items", "0002_items_name"]

    # As it says: traffic to green (a bare `pulumi up -s live`), the new release to blue too.
    # A rollback to the release blue served (v1) is still possible: refused for the window.
    ws.config_set("live", "bluegreen:activeColor", "green")
    ws.up("live")
    ws.set_config(
        "blue", {"bluegreen:version": "v2", "bluegreen:schemaRevision": "0002_items_name"}
    )
    ws.up("blue")
    said = refused(ws.up, "data")
    window = (
        r"Contract revision 0003_drop_title on data stack data denied: a rollback to the release "
        r"blue served until \S+ \S+ UTC is possible until (\S+ \S+) UTC \(live stack live keeps "
        r"it so for 30 minutes, bluegreen:rollbackWindowMinutes\), and that release needs schema "
        r"revision 0001_items, before 0002_items_name, whose old shape 0003_drop_title removes\. "
        r"Wait until \1 UTC; or, if it will not come back, deploy the new release to blue \(with "
        r"bluegreen:schemaRevision 0002_items_name or later; `pulumi up -s blue`\) and shorten "
        r"bluegreen:rollbackWindowMinutes on the live stack \(`pulumi up -s live`\)\."
    )
    assert re.search(window, said), said
    assert "arm stack blue needs" not in said  # blue's own release needs 0002_items_name now
    assert versions(dsn) == ["0002_items_name"] and columns(dsn) == shape

    # The window shortened (nobody will bring v1 back): the contract goes through.
    ws.config_set("live", "bluegreen:rollbackWindowMinutes", "0")
    ws.up("live")
    assert ws.outputs("live")["rollbackWindowMinutes"] == 0
    ws.up("data")
    assert versions(dsn) == ["0003_drop_title"]
    shape = ["id", "created_at", "name"]
    assert columns(dsn) == shape
    assert applied(project) == ["0001_items", "0002_items_name", "0003_drop_title"]
    for color in ("blue", "green"):  # v1's row, read by both arms in v2's shape
        row = probe.request(f"{project.arm_url(color)}/items/{kept.json()['id']}")
        assert row.json() == {"id": kept.json()["id"], "name": "kept"}, row.describe()

    # A release that needs the shape the contract removed: refused, blue keeps serving v2's.
    ws.config_set("blue", "bluegreen:schemaRevision", "0001_items")
    said = refused(ws.up, "blue")
    assert "whose shape the applied contract 0003_drop_title removed" in said, said
    ws.config_set("blue", "bluegreen:schemaRevision", "0002_items_name")

    # An expand that drops a column: refused by preview and by up, the database unchanged.
    versions_dir = os.path.join(project.dir, "app", "migrations", "versions")
    with open(os.path.join(versions_dir, "0004_drop_created_at.py"), "w") as f:
        f.write(textwrap.dedent(DESTRUCTIVE))
    ws.config_set("data", "bluegreen:schemaRevision", "0004_drop_created_at")
    for step in (ws.preview, ws.up):
        said = refused(step, "data")
        assert (
            "Expand revision 0004_drop_created_at on data stack data denied: it holds a "
            "destructive or locking statement: `ALTER TABLE items DROP COLUMN created_at`"
        ) in said, said
        fix = "An expand runs while the release before it still serves: move it into a contract"
        assert fix in said, said
        assert versions(dsn) == ["0003_drop_title"] and columns(dsn) == shape
    assert applied(project) == ["0001_items", "0002_items_name", "0003_drop_title"]
