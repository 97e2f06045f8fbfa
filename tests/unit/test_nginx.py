"""The nginx text: one group per colour, the other colour as backup, the switch state, and that
nothing can be injected."""

import json
import re

import pytest

from bluegreen import nginx, nginx_conf, probe
from bluegreen.config import Backpressure, Cache, Queue, Shadow, weights_for
from tests.support.mocks import maintenance

NODES = {"blue": ["127.0.0.1:18081"], "green": ["127.0.0.1:18082"]}


LEASE = nginx.Lease(fence=1, since=0.0, handover=5)


TOKEN = "0123456789abcdef" * 2


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
    return nginx_conf.render_local(
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
        probe_token=TOKEN,
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
            "probe_token": TOKEN,
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
    module = (nginx._SHARED.parent.parent / "nixos/modules/edge-node/nginx.nix").read_text()
    assert (
        f'"{since}"' in module and f"keepalive_min_timeout {nginx.KEEPALIVE_MIN_TIMEOUT};" in module
    )


ROOT = nginx._SHARED.parent.parent


SOURCES = ("__main__.py", "agents", "app", "bench", "bluegreen", "components", "cutover", "nixos")


SOURCES += ("platforms", "policy", "scripts")


RESPONSE_HEADERS = {
    "X-Bluegreen-Color",
    "X-Bluegreen-Version",
    "X-Bluegreen-Edge",
    "X-Bluegreen-Edge-Generation",
    "X-Bluegreen-Banner",
    "X-Bluegreen-Cache",
    "X-Bluegreen-Journal-Dropped",
}
"""What the arms and the edge answer with; none is read from a request."""


NAME = re.compile(r"x-bluegreen-[a-z][a-z-]*[a-z]", re.I)


# Where a header is read from a request: in njs, in nginx variables.
READ = re.compile(r"headersIn\[['\"](x-bluegreen-[\w-]+)|\$http_(x_bluegreen_\w+)", re.I)


# ... and in the arms' and services' request handlers, by name or by a constant of the module.
HANDLER_READ = re.compile(r"self\.headers\.get\(\s*(?:['\"](x-bluegreen-[\w-]+)|([A-Z_]+))", re.I)


def _sources():
    for top in SOURCES:
        path = ROOT / top
        files = [path] if path.is_file() else sorted(path.rglob("*"))
        for f in files:
            if f.suffix in (".py", ".js", ".nix", ".conf", ".sh") and ".venv" not in f.parts:
                yield f, f.read_text(errors="replace")


def _canonical(name: str) -> str:
    return "-".join(w.capitalize() for w in name.replace("_", "-").split("-"))


def test_every_bluegreen_request_header_in_the_sources_is_one_the_edge_sets():
    """A new X-Bluegreen-* header sent in requests must join probe.REQUEST_HEADERS, or a client
    could send it through the edge and an arm would believe it."""
    found, read = set(), set()
    for _path, text in _sources():
        found |= {_canonical(n) for n in NAME.findall(text)}
        read |= {_canonical(next(g for g in m if g)) for m in READ.findall(text)}
        if "BaseHTTPRequestHandler" in text:
            constants = dict(re.findall(r'^([A-Z_]+) = "(X-Bluegreen-[\w-]+)"', text, re.M))
            for name, constant in HANDLER_READ.findall(text):
                name = name or constants.get(constant, "")
                read |= {_canonical(name)} if name else set()
    assert read and read <= set(probe.REQUEST_HEADERS), read - set(probe.REQUEST_HEADERS)
    unknown = found - set(probe.REQUEST_HEADERS) - RESPONSE_HEADERS
    assert not unknown, f"say whether these are request or response headers: {unknown}"


def _blocks(text: str, opener: str) -> list[str]:
    """The bodies of every block whose first line starts with `opener`."""
    out, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(opener) and line.rstrip().endswith("{"):
            depth, body = 1, []
            for inner in lines[i + 1 :]:
                depth += inner.count("{") - inner.count("}")
                if depth <= 0:
                    break
                body.append(inner.strip())
            out.append("\n".join(body))
    return out


def test_every_location_that_proxies_sets_every_bluegreen_request_header():
    text = local_conf(
        cache=Cache(True, 64, ()),
        shadow=Shadow(10, True),
        queue=Queue(paths=("/orders",)),
        queue_listen="127.0.0.1:18095",
    )
    proxying = [b for b in _blocks(text, "location ") if "proxy_pass " in b]
    assert len(proxying) == 3  # the arms, shadow traffic, the queue service
    for body in proxying:
        for name in probe.REQUEST_HEADERS:
            assert f"proxy_set_header {name} " in body, (name, body)
    # An arm is told of a probe only as the edge verified it, and never of a warm-up.
    assert "proxy_set_header X-Bluegreen-Probe $bluegreen_probe;" in nginx.PROXY
    assert 'proxy_set_header X-Bluegreen-Warm "";' in nginx.PROXY
    assert "$http_x_bluegreen" not in text  # nothing trusts what the client sent


def test_an_arms_own_documents_are_not_served_through_the_edge():
    assert f"location ^~ {nginx.ARM_PREFIX} {{ return 404; }}" in local_conf()


def test_the_queue_has_a_per_client_limit_of_its_own():
    limited = Queue(paths=("/orders",), rate=3, burst=0, connections=2)
    text = local_conf(queue=limited, queue_listen="127.0.0.1:18095")
    assert "limit_req_zone $binary_remote_addr zone=bluegreen_queue_rate:1m rate=3r/s;" in text
    (queue,) = _blocks(text, "location @bluegreen_queue")
    assert "limit_req zone=bluegreen_queue_rate nodelay;" in queue  # nginx refuses burst=0
    assert "limit_conn bluegreen_queue_conn 2;" in queue
    assert "limit_req_status 429;" in queue and "limit_conn_status 429;" in queue
    assert "bluegreen_queue_rate" not in local_conf()


def test_the_probe_token_is_kept_and_a_new_edge_gets_its_own():
    assert nginx.probe_token(None, "not a token", TOKEN) == TOKEN
    fresh = nginx.probe_token(None)
    assert re.fullmatch(nginx.PROBE_TOKEN, fresh) and fresh != nginx.probe_token(None)
    assert _state()["probe"] == TOKEN


@pytest.mark.parametrize("token", ["", "short", "0123456789abcdef" * 2 + '"', "A" * 32])
def test_a_bad_probe_token_is_refused(token):
    with pytest.raises(ValueError, match="probe token"):
        _state(probe_token=token)
