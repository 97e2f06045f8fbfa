"""The nginx text: one group per colour, the other colour as backup, the switch state, and that
nothing can be injected."""

import pytest

from bluegreen import nginx
from bluegreen.config import Backpressure, Cache, Shadow, weights_for
from tests.unit.mocks import maintenance

NODES = {"blue": ["127.0.0.1:18081"], "green": ["127.0.0.1:18082"]}
OFF = {
    "cache": Cache(False, 256, ()),
    "shadow": Shadow(0, False),
    "backpressure": Backpressure(0, 0, 0, 1, "always", 300),
}


def test_each_colour_group_has_its_nodes_and_the_other_colour_as_backup():
    groups = nginx.groups(NODES)
    assert groups["green"] == [
        ("127.0.0.1:18082", nginx.FAILOVER),
        ("127.0.0.1:18081", {"backup": True}),
    ]
    text = nginx.render_group(nginx.group_name("shop", "blue"), groups["blue"])
    assert "upstream bluegreen_shop_blue {" in text
    assert "server 127.0.0.1:18081 max_fails=1 fail_timeout=2s;" in text
    assert "server 127.0.0.1:18082 backup;" in text


def test_canary_weights_split_traffic():
    assert weights_for("green", canary=5) == {"green": 5, "blue": 95}


@pytest.mark.parametrize("evil", ["127.0.0.1:1; }", "host name:80", '127.0.0.1:80"', "a\nb"])
def test_injection_is_refused(evil):
    with pytest.raises(ValueError, match="refusing to render"):
        nginx.render_group("bg", [(evil, {})])


def local_conf(**features) -> str:
    return nginx.render_local(
        app="shop",
        run_dir="/r",
        listen="127.0.0.1:80",
        nodes=NODES,
        js_module="/m.so",
        **{**OFF, **features},
    )


def test_nginx_conf_does_not_say_which_colour_is_live():
    """Which colour takes a request is switch.js's (the state): the config has both groups."""
    text = local_conf()
    assert "proxy_pass http://bluegreen_shop_$bluegreen_color;" in text
    assert text == local_conf()


def test_a_rate_limit_without_burst_leaves_burst_out():
    """nginx refuses `burst=0`."""
    rate = Backpressure(10, 0, 0, 1, "always", 300)
    assert "limit_req zone=bluegreen_rate nodelay;" in local_conf(backpressure=rate)
    burst = Backpressure(10, 5, 0, 1, "always", 300)
    assert "limit_req zone=bluegreen_rate burst=5 nodelay;" in local_conf(backpressure=burst)


def state(active: str) -> dict:
    return nginx.switch_state(
        conf_generation="c0ffee",
        active=active,
        weights=weights_for(active),
        sticky=False,
        versions={"blue": "v1", "green": "v2"},
        maintenance=maintenance(enabled=False),
        shadow=OFF["shadow"],
        backpressure=OFF["backpressure"],
        limits_until=None,
    )


def test_generation_identifies_the_state():
    a, b, flipped = state("blue"), state("blue"), state("green")
    assert a == b and len(a["generation"]) == 12
    assert flipped["generation"] != a["generation"]
