"""The maintenance window, the queue and the writer lease as users configure them: bad values are
named with the key, the value and what is allowed, before anything changes; a DSN is never shown."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bluegreen import announce, nginx
from bluegreen.config import ConfigError
from tests.support.mocks import stack

EDGE = {"role": "edge", "activeColor": "blue"}


def edge(**values):
    return stack("live", **EDGE, **values).settings


def problems(**values) -> list[str]:
    with pytest.raises(ConfigError) as err:
        edge(**values)
    return err.value.problems


def test_the_window_and_the_queue_as_configured():
    s = edge(
        maintenanceStart="2026-11-24T01:00:00Z",
        maintenanceEnd="2026-11-24T02:30:00+00:00",
        maintenanceQueue="/orders, /cart/",
        writerHandoverSeconds="3",
    )
    m = s.maintenance
    assert m.window.start == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    assert m.window.end == datetime(2026, 11, 24, 2, 30, tzinfo=UTC)
    assert (m.queue.paths, m.queue.store, m.queue.max_body_kb, m.queue.soak_s) == (
        ("/orders", "/cart/"),
        "sqlite",
        64,
        5,
    )
    assert s.handover_s == 3
    defaults = edge().maintenance
    assert (defaults.window.start, defaults.window.end, defaults.queue.enabled) == (
        None,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"maintenanceStart": "tomorrow"},
            "bluegreen:maintenanceStart must be a UTC time such as 2026-11-24T02:00:00Z, "
            'got "tomorrow"',
        ),
        (
            {"maintenanceEnd": "2026-11-24T02:00:00+01:00"},
            "bluegreen:maintenanceEnd must be a UTC time such as 2026-11-24T02:00:00Z, got "
            '"2026-11-24T02:00:00+01:00"',
        ),
        (
            {"maintenanceEnd": "2026-11-24T02:00:00"},
            "bluegreen:maintenanceEnd must be a UTC time",
        ),
        (
            {"maintenanceStart": "2026-11-24T02:00:00Z", "maintenanceEnd": "2026-11-24T01:00:00Z"},
            "bluegreen:maintenanceEnd must be a time after maintenanceStart "
            '2026-11-24T02:00:00Z, got "2026-11-24T01:00:00Z"',
        ),
        ({"maintenanceQueue": "orders"}, "bluegreen:maintenanceQueue must be an absolute URL path"),
        ({"maintenanceQueue": "/a;b"}, "bluegreen:maintenanceQueue must be an absolute URL path"),
        (
            {"maintenanceQueueStore": "redis"},
            'bluegreen:maintenanceQueueStore must be "sqlite" or "postgresql", got "redis"',
        ),
        (
            {"maintenanceQueueMaxBodyKb": "0"},
            "bluegreen:maintenanceQueueMaxBodyKb must be an integer from 1 to 10240",
        ),
        (
            {"maintenanceQueueRate": "0"},
            'bluegreen:maintenanceQueueRate must be an integer from 1 to 10000, got "0"',
        ),
        (
            {"maintenanceQueueBurst": "-1"},
            'bluegreen:maintenanceQueueBurst must be an integer from 0 to 100000, got "-1"',
        ),
        (
            {"maintenanceQueueConnections": "many"},
            'bluegreen:maintenanceQueueConnections must be an integer from 1 to 100000, got "many"',
        ),
        (
            {"writerHandoverSeconds": "0"},
            "bluegreen:writerHandoverSeconds must be an integer from 1 to 600",
        ),
        (
            {"maintenanceQueueMaxPending": "0"},
            'bluegreen:maintenanceQueueMaxPending must be an integer from 1 to 10000000, got "0"',
        ),
        (
            {"maintenanceQueueMaxPendingMb": "lots"},
            "bluegreen:maintenanceQueueMaxPendingMb must be an integer from 1 to 1000000, got "
            '"lots"',
        ),
        (
            {"maintenanceQueueMaxPerClient": "-1"},
            "bluegreen:maintenanceQueueMaxPerClient must be an integer from 1 to 10000000",
        ),
        (
            {"maintenanceQueueMaxPending": "100", "maintenanceQueueMaxPerClient": "500"},
            "bluegreen:maintenanceQueueMaxPerClient must be at most maintenanceQueueMaxPending "
            '(100), got "500"',
        ),
        (
            {"maintenanceQueueMinFreeMb": "-5"},
            "bluegreen:maintenanceQueueMinFreeMb must be an integer from 0 to 1000000",
        ),
        (
            {"maintenanceQueueRetryMinutes": "0"},
            'bluegreen:maintenanceQueueRetryMinutes must be an integer from 1 to 10080, got "0"',
        ),
    ],
)
def test_bad_values_are_named_before_anything_changes(values, expected):
    assert any(p.startswith(expected) for p in problems(**values)), problems(**values)


def test_the_queue_caps_have_safe_defaults_and_take_the_stacks_values():
    q = edge(maintenanceQueue="/orders").maintenance.queue
    caps = (q.max_pending, q.max_pending_mb, q.max_per_client, q.min_free_mb, q.retry_minutes)
    assert caps == (10_000, 256, 2_500, 256, 10)
    q = edge(
        maintenanceQueue="/orders",
        maintenanceQueueMaxPending="50",
        maintenanceQueueMaxPendingMb="8",
        maintenanceQueueMaxPerClient="5",
        maintenanceQueueMinFreeMb="0",
        maintenanceQueueRetryMinutes="60",
    ).maintenance.queue
    caps = (q.max_pending, q.max_pending_mb, q.max_per_client, q.min_free_mb, q.retry_minutes)
    assert caps == (50, 8, 5, 0, 60)


def test_the_queues_per_client_limit_is_on_by_default_and_takes_the_stacks_values():
    q = edge(maintenanceQueue="/orders").maintenance.queue
    assert (q.rate, q.burst, q.connections) == (5, 10, 4)
    q = edge(
        maintenanceQueue="/orders",
        maintenanceQueueRate="50",
        maintenanceQueueBurst="0",
        maintenanceQueueConnections="2",
    ).maintenance.queue
    assert (q.rate, q.burst, q.connections) == (50, 0, 2)


def test_a_postgresql_store_needs_its_dsn_and_never_shows_it():
    (problem,) = problems(maintenanceQueue="/orders", maintenanceQueueStore="postgresql")
    assert "bluegreen:maintenanceQueueDsn must be a postgresql:// URL" in problem
    assert "it is not set" in problem and "pulumi config set --secret" in problem
    (problem,) = problems(
        maintenanceQueue="/orders",
        maintenanceQueueStore="postgresql",
        maintenanceQueueDsn="mysql://app:hunter2@db/shop",
    )
    assert "hunter2" not in problem and "not shown: it is a secret" in problem
    ok = edge(
        maintenanceQueue="/orders",
        maintenanceQueueStore="postgresql",
        maintenanceQueueDsn="postgresql://app:hunter2@db/shop",
    )
    assert ok.maintenance.queue.store == "postgresql"
    assert "hunter2" not in repr(ok), "the settings never hold the DSN"


def test_the_features_round_trip_through_the_engine_with_the_window_and_the_queue():
    s = edge(
        maintenance="true",
        maintenanceEnd="2026-11-24T02:00:00Z",
        maintenanceQueue="/orders",
        maintenanceQueueMaxPending="50",
        maintenanceQueueMaxPerClient="5",
        maintenanceQueueRetryMinutes="30",
    )
    features = nginx.Features(s.maintenance, s.cache, s.shadow, s.backpressure)
    props = features.props()
    # The engine drops null values and may give numbers back as floats.
    props["maintenance"] = {k: v for k, v in props["maintenance"].items() if v is not None}
    assert nginx.Features.from_props(props) == features


def test_the_lease_fence_only_grows_with_each_change_of_pointer():
    first = nginx.Lease.next(None, "blue", 5, 100.0)
    assert (first.fence, first.since) == (1, 100.0)
    state = {"color": "blue", "fence": 1, "since": 100.0}
    same = nginx.Lease.next(state, "blue", 5, 200.0)
    assert (same.fence, same.since) == (1, 100.0), "no move, no new fence"
    moved = nginx.Lease.next(state, "green", 5, 300.0)
    assert (moved.fence, moved.since, moved.handover) == (2, 300.0, 5)


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [
        (None, {"enabled": False}, None),
        (None, {"enabled": True, "end": "2026-11-24T02:00:00Z"}, "maintenance-started"),
        ({"enabled": True}, {"enabled": False}, "maintenance-ended"),
        (
            {"enabled": False},
            {"enabled": False, "start": "2026-11-24T01:00:00Z"},
            "maintenance-planned",
        ),
        (
            {"enabled": False, "start": "2026-11-24T01:00:00Z"},
            {"enabled": False, "start": "2026-11-24T01:00:00Z", "banner": "x"},
            None,
        ),
        ({"enabled": True}, {"enabled": True, "end": "2026-11-24T03:00:00Z"}, None),
    ],
)
def test_which_changes_of_the_window_are_announced(before, after, event):
    assert announce.window_event(before, after) == event


def test_the_window_notice_reads_in_a_channel():
    window = {"start": "2026-11-24T01:00:00Z", "end": "2026-11-24T02:00:00Z", "banner": "DB <move>"}
    body = announce.window_notice("maintenance-planned", "live", window, "blue")
    assert body["text"] == (
        "bluegreen live: maintenance planned 2026-11-24T01:00:00Z to 2026-11-24T02:00:00Z (UTC)"
        " — DB &lt;move&gt;"
    )
    assert body["bluegreen"]["event"] == "maintenance-planned"
    assert body["bluegreen"]["live"] == "blue"
