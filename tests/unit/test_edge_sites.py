"""Several edges (bluegreen:edges) and their waves (bluegreen:waves): what a stack file may say,
and every bad value named with its key, the value and what is allowed, before anything changes."""

from types import SimpleNamespace

import pytest

from bluegreen.config import ConfigError
from bluegreen.config_parts.edge_sites import MOVING_ENV, moving
from bluegreen.live_stack import LiveOutputs, Traffic
from cutover.flip import flip
from cutover.results import Outcome
from platforms.local import local_sites
from tests.support.mocks import stack

EDGE = {"role": "edge", "activeColor": "blue"}
THREE = '{"site-a": "127.0.0.1", "site-b": "127.0.0.2", "site-c": "127.0.0.3"}'


def settings(**values):
    return stack("live", **EDGE, **values)


def problems(**values) -> str:
    with pytest.raises(ConfigError) as err:
        settings(**values)
    return str(err.value)


def test_one_edge_stays_the_default():
    s = settings()
    assert not s.settings.sites.several
    assert [(x.name, x.listen) for x in s.platform.sites(s.settings)] == [("", "127.0.0.1:18080")]


def test_each_site_gets_its_own_address_and_the_first_keeps_the_stacks_directory():
    s = settings(edges=THREE, waves='[["site-a"], ["site-b", "site-c"]]')
    assert s.settings.sites.waves == (("site-a",), ("site-b", "site-c"))
    run = s.settings.run_dir
    assert [(x.name, x.listen, x.run_dir) for x in s.platform.sites(s.settings)] == [
        ("site-a", "127.0.0.1:18080", run),
        ("site-b", "127.0.0.2:18080", f"{run}-site-b"),
        ("site-c", "127.0.0.3:18080", f"{run}-site-c"),
    ]


def test_without_waves_every_edge_is_one_wave():
    assert settings(edges=THREE).settings.sites.waves == (("site-a", "site-b", "site-c"),)


SITES = "a JSON object of up to 16 edges"
WAVES = "a JSON list of waves, each a non-empty list of the site names in bluegreen:edges"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"edges": "site-a=127.0.0.1"}, f"bluegreen:edges must be {SITES}"),
        ({"edges": "[]"}, f"bluegreen:edges must be {SITES}"),
        ({"edges": "{}"}, f"bluegreen:edges must be {SITES}"),
        ({"edges": '{"Site A": "127.0.0.1"}'}, f"bluegreen:edges must be {SITES}"),
        ({"edges": '{"a": "127.0.0.1; evil"}'}, f"bluegreen:edges must be {SITES}"),
        ({"edges": '{"a": 1}'}, f"bluegreen:edges must be {SITES}"),
        (
            {"edges": "{" + ", ".join(f'"s{i}": "127.0.0.{i + 1}"' for i in range(17)) + "}"},
            f"bluegreen:edges must be {SITES}",
        ),
        ({"waves": '[["site-a"]]'}, "bluegreen:waves must be unset while bluegreen:edges is unset"),
        ({"edges": THREE, "waves": "site-a"}, f"bluegreen:waves must be {WAVES}"),
        ({"edges": THREE, "waves": "[[]]"}, f"bluegreen:waves must be {WAVES}"),
        (
            {"edges": THREE, "waves": '[["site-a"], ["site-b"]]'},
            "not in any wave: site-c",
        ),
        (
            {"edges": THREE, "waves": '[["site-a", "site-b"], ["site-b", "site-c", "x"]]'},
            "unknown or repeated: site-b, x",
        ),
    ],
)
def test_a_bad_value_is_named_with_what_is_allowed(values, expected):
    said = problems(**values)
    assert expected in said
    assert next(iter(values.values())) in said or "got" in said


@pytest.mark.parametrize(
    ("edges", "why"),
    [
        ('{"a": "10.0.0.1", "b": "127.0.0.2"}', "not loopback: a: '10.0.0.1'"),
        ('{"a": "db.example", "b": "127.0.0.2"}', "not loopback: a: 'db.example'"),
        ('{"a": "127.0.0.2", "b": "127.0.0.2"}', "an address is used twice"),
    ],
)
def test_on_local_each_site_is_a_loopback_address_of_its_own(edges, why):
    s = settings(edges=edges)
    with pytest.raises(ConfigError) as err:
        local_sites.refuse_bad_places(s.settings)
    assert "bluegreen:edges must give each site its own IPv4 loopback address" in str(err.value)
    assert why in str(err.value) and "(nothing was changed)" in str(err.value)


def test_the_sites_an_update_moves_come_from_the_command_and_are_checked():
    sites = settings(edges=THREE).settings.sites
    assert moving(sites, {}) is None  # a bare `pulumi up`: every edge moves
    assert moving(sites, {MOVING_ENV: '["site-a"]'}) == {"site-a"}
    with pytest.raises(ConfigError, match="BLUEGREEN_MOVING_EDGES must be a non-empty JSON list"):
        moving(sites, {MOVING_ENV: '["site-x"]'})


def test_canary_steps_and_waves_are_refused_together_before_anything_is_read():
    s = settings(edges=THREE, waves='[["site-a"], ["site-b", "site-c"]]').settings
    said, logged = [], []
    op = SimpleNamespace(
        edge=SimpleNamespace(sites=s.sites, hold=s.hold),
        live=lambda: LiveOutputs(traffic=Traffic("blue", {"blue": 100, "green": 0})),
        out=said.append,
        log=SimpleNamespace(record=lambda **fields: logged.append(fields)),
        notify=lambda *args: None,
    )
    report = flip(op, "green", canary=[5, 100])
    assert report.outcome is Outcome.REFUSED
    assert "--canary steps and bluegreen:waves do not combine" in said[0]
    assert "the pointer stays at blue" in said[0] and logged[0]["phase"] == "refused"
