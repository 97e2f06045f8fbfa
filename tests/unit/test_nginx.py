"""The edge's nginx text and its switch state: what is structural, what moves traffic, and that
nothing can be injected. tests/e2e/test_switch.py serves them with a real nginx."""

import json

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


def conf(nodes=NODES, **features) -> str:
    return nginx.render_local(
        app="shop",
        run_dir="/r",
        listen="127.0.0.1:80",
        nodes=nodes,
        js_module="/usr/lib/nginx/modules/ngx_http_js_module.so",
        **{**OFF, **features},
    )


def state(active="blue", canary=None, **fields) -> dict:
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
            **fields,
        }
    )


def test_each_colour_has_a_group_with_the_other_as_backup():
    groups = nginx.groups(NODES)
    assert groups["green"] == [
        ("127.0.0.1:18082", {"max_fails": 1, "fail_timeout": "2s"}),
        ("127.0.0.1:18081", {"backup": True}),
    ]
    text = conf()
    assert "upstream bluegreen_shop_green {" in text
    assert "server 127.0.0.1:18082 max_fails=1 fail_timeout=2s;" in text
    assert "server 127.0.0.1:18081 backup;" in text
    assert "proxy_pass http://bluegreen_shop_$bluegreen_color;" in text


def test_the_pointer_is_not_in_the_config():
    """A flip, a canary step and maintenance change the state only (render_local is not even
    told the pointer): nginx never reloads for them."""
    flipped, canary = state("green"), state("green", canary=10)
    assert flipped["weights"] == {"blue": 0, "green": 100}
    assert canary["weights"] == {"blue": 90, "green": 10}
    assert len({state()["generation"], flipped["generation"], canary["generation"]}) == 3


def test_the_state_carries_maintenance_with_its_answer():
    on = state(maintenance=maintenance(enabled=True, status=423, retry_after_s=7, banner="Back"))
    assert on["maintenance"]["status"] == 423 and on["maintenance"]["retryAfter"] == 7
    assert json.loads(on["maintenance"]["body"])["error"] == "maintenance"
    assert on["writes"] == ["POST", "PUT", "PATCH", "DELETE"]
    assert state()["maintenance"] is None


def test_limits_always_or_until_the_hold_ends():
    always = Backpressure(100, 10, 0, 2, "always", 300)
    hold = Backpressure(100, 10, 0, 2, "hold", 300)
    assert state(backpressure=always, limits_until=5.0)["limits"] == {
        "retryAfter": 2,
        "until": None,
    }
    assert state(backpressure=hold, limits_until=5.0)["limits"] == {"retryAfter": 2, "until": 5.0}
    assert state(limits_until=5.0)["limits"] is None


def test_features_render_only_when_on():
    plain = conf()
    for directive in ("proxy_cache ", "mirror ", "limit_req ", "limit_conn "):
        assert directive not in plain
    text = conf(
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


@pytest.mark.parametrize("evil", ["127.0.0.1:1; }", "host name:80", '127.0.0.1:80"', "a\nb"])
def test_injection_is_refused(evil):
    with pytest.raises(ValueError, match="refusing to render"):
        conf(nodes={"blue": [evil], "green": ["127.0.0.1:2"]})


def test_generation_identifies_the_config():
    a, b = conf(), conf(shadow=Shadow(5, False))
    gen = a.split('$bluegreen_conf { default "')[1].split('"')[0]
    assert len(gen) == 12 and gen not in b
