"""The upstream text: who gets traffic, who is backup, and that nothing can be injected."""

import pytest

from bluegreen import nginx
from bluegreen.config import weights_for
from tests.unit.mocks import maintenance

NODES = {"blue": ["127.0.0.1:18081"], "green": ["127.0.0.1:18082"]}


def test_active_arm_takes_all_traffic_and_idle_arm_is_backup():
    text = nginx.render_upstream("bg", nginx.servers_for(NODES, weights_for("green")))
    assert "server 127.0.0.1:18082 weight=100" in text
    assert "server 127.0.0.1:18081 backup;" in text


def test_canary_weights_split_traffic():
    assert weights_for("green", canary=5) == {"green": 5, "blue": 95}
    text = nginx.render_upstream("bg", nginx.servers_for(NODES, weights_for("green", 25)))
    assert "server 127.0.0.1:18082 weight=25" in text and "server 127.0.0.1:18081 weight=75" in text


def test_server_order_is_stable_so_a_flip_diff_shows_only_weights():
    blue = nginx.servers_for(NODES, weights_for("blue"))
    green = nginx.servers_for(NODES, weights_for("green"))
    assert [s.address for s in blue] == [s.address for s in green]


@pytest.mark.parametrize("evil", ["127.0.0.1:1; }", "host name:80", '127.0.0.1:80"', "a\nb"])
def test_injection_is_refused(evil):
    with pytest.raises(ValueError, match="refusing to render"):
        nginx.render_upstream("bg", [nginx.Server(evil, "blue", 100)])


def test_an_upstream_without_traffic_is_refused():
    with pytest.raises(ValueError, match="no server with a weight above 0"):
        nginx.render_upstream("bg", [nginx.Server("127.0.0.1:1", "blue", 0)])


def local_conf(active: str) -> str:
    return nginx.render_local(
        app="shop",
        run_dir="/r",
        listen="127.0.0.1:80",
        servers=nginx.servers_for(NODES, weights_for(active)),
        active_color=active,
        maintenance=maintenance(enabled=False),
    )


def test_generation_identifies_the_config():
    a, b, flipped = local_conf("blue"), local_conf("blue"), local_conf("green")
    gen = a.split('Generation "')[1].split('"')[0]
    assert a == b and len(gen) == 12
    assert gen not in flipped
