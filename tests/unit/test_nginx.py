"""The nginx text: one group per colour, the other colour as backup, the switch state, and that
nothing can be injected."""

import json

import pytest

from bluegreen import nginx
from bluegreen.config import Backpressure, Cache, Shadow, weights_for
from tests.unit.mocks import maintenance

NODES = {"blue": ["127.0.0.1:18081"], "green": ["127.0.0.1:18082"]}
LEASE = nginx.Lease(fence=1, since=0.0, handover=5)

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
        lease=LEASE,
    )


def test_generation_identifies_the_state():
    a, b, flipped = state("blue"), state("blue"), state("green")
    assert a == b and len(a["generation"]) == 12
    assert flipped["generation"] != a["generation"]


def _state(active="blue", canary=None, **fields) -> dict:
    return nginx.switch_state(
        **{
            "conf_generation": "c0ffee",
            "active": active,
            "weights": weights_for(active, canary),
            "sticky": False,
            "versions": {"blue": "v1", "green": "v2"},
            "maintenance": maintenance(enabled=False),
            "shadow": OFF["shadow"],
            "backpressure": OFF["backpressure"],
            "limits_until": None,
            "lease": LEASE,
            **fields,
        }
    )


def test_the_state_carries_maintenance_with_its_answer():
    on = _state(maintenance=maintenance(enabled=True, status=423, retry_after_s=7, banner="Back"))
    assert on["maintenance"]["status"] == 423 and on["maintenance"]["retryAfter"] == 7
    assert json.loads(on["maintenance"]["body"])["error"] == "maintenance"
    assert on["writes"] == ["POST", "PUT", "PATCH", "DELETE"]
    assert _state()["maintenance"] is None


def test_limits_always_or_until_the_hold_ends():
    always = Backpressure(100, 10, 0, 2, "always", 300)
    hold = Backpressure(100, 10, 0, 2, "hold", 300)
    assert _state(backpressure=always, limits_until=5.0)["limits"] == {
        "retryAfter": 2,
        "until": None,
    }
    assert _state(backpressure=hold, limits_until=5.0)["limits"] == {"retryAfter": 2, "until": 5.0}
    assert _state(limits_until=5.0)["limits"] is None


def test_features_render_only_when_on():
    plain = local_conf()
    for directive in ("proxy_cache ", "mirror ", "limit_req ", "limit_conn "):
        assert directive not in plain
    text = local_conf(
        cache=Cache(True, 64, ("/",)),
        shadow=Shadow(10, False),
        backpressure=Backpressure(200, 20, 50, 1, "always", 300),
    )
    assert "max_size=64m" in text
    assert '"$bluegreen_color $bluegreen_version $scheme://$host$request_uri"' in text
    assert "mirror /_bluegreen_shadow;" in text
    assert "upstream bluegreen_shop_shadow_green {" in text
    assert "rate=200r/s" in text and "burst=20 nodelay" in text
    assert "limit_conn bluegreen_conn 50;" in text


def test_every_js_variable_is_a_function_of_switch_js():
    for function in nginx.JS_VARIABLES.values():
        assert f"function {function}(r)" in nginx.SWITCH_JS
    exported = nginx.SWITCH_JS.rsplit("export default {", 1)[1]
    assert all(f in exported for f in nginx.JS_VARIABLES.values())


def test_a_reload_keeps_kept_alive_clients_where_nginx_can():
    """nginx 1.27.4 and later close a kept-alive connection on reload only after one more
    response; the NixOS module turns that on by the same version."""
    assert "keepalive_min_timeout" not in local_conf()
    assert "keepalive_min_timeout 1s;" in local_conf(safe_reload=True)
    since = ".".join(map(str, nginx.SAFE_RELOAD_SINCE))
    module = (nginx._SHARED.parent / "edge-node.nix").read_text()
    assert (
        f'"{since}"' in module and f"keepalive_min_timeout {nginx.KEEPALIVE_MIN_TIMEOUT};" in module
    )


@pytest.mark.integration
def test_the_local_nginx_version_is_read():
    from platforms.local.nginx_edge import nginx_version

    version = nginx_version()
    assert len(version) == 3 and version >= (1, 18, 0)
