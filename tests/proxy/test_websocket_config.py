"""`routes[].websocket`: defaults pinned, shorthands, precise refusals, the compiled settings."""

from __future__ import annotations

import math

import pytest

from edgeward.config.text import load_text
from edgeward.proxy.websocket_config import WebSocketConfig
from edgeward.structs import ConfigError

BASE = """
upstreams: {a: {targets: ["127.0.0.1:1"]}}
routes:
"""


def test_defaults_are_pinned() -> None:
    w = WebSocketConfig()
    assert (w.idle_timeout, w.max_tunnels, w.ping_interval) == (60.0, None, None)
    s = w.settings()
    assert (s.idle_timeout, s.max_tunnels, s.ping_interval) == (60.0, None, math.inf)


def test_true_is_every_default_and_false_or_absent_is_off() -> None:
    cfg = load_text(BASE + """
  - {match: {path: /a}, upstream: a, websocket: true}
  - {match: {path: /b}, upstream: a, websocket: false}
  - {match: {path: /c}, upstream: a}
  - {match: {path: /d}, upstream: a, websocket: {idle_timeout: 5m, max_tunnels: 10}}
  - {match: {path: /e}, upstream: a, websocket: {idle_timeout: null, ping_interval: 20s}}
""", "gw.yaml")
    ws = [r.websocket for r in cfg.routes]
    assert ws[0] == WebSocketConfig()
    assert ws[1] is None and ws[2] is None
    assert ws[3] == WebSocketConfig(idle_timeout=300.0, max_tunnels=10)
    assert ws[4] is not None and ws[4].settings().idle_timeout == math.inf
    assert ws[4].settings().ping_interval == 20.0


@pytest.mark.parametrize(("entry", "line"), [
    ("websocket: {idle_timeout: 0s}", "routes[0].websocket.idle_timeout: must be above 0"),
    ("websocket: {max_tunnels: 0}", "routes[0].websocket.max_tunnels: must be at least 1"),
    ("websocket: {ping_interval: 0s}", "routes[0].websocket.ping_interval: must be above 0"),
    ("websocket: {pong_timeout: 20s}", "routes[0].websocket.pong_timeout"),
    ("websocket: yes please", "routes[0].websocket"),
])
def test_refusals_name_the_key(entry: str, line: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(BASE + f"  - {{match: {{path: /a}}, upstream: a, {entry}}}\n", "gw.yaml")
    assert any(text.startswith(f"gw.yaml: {line}") for text in info.value.lines()), \
        info.value.lines()


def test_a_route_that_does_not_forward_cannot_tunnel() -> None:
    with pytest.raises(ConfigError) as info:
        load_text(BASE + "  - {match: {path: /a}, respond: {status: 200}, websocket: true}\n",
                  "gw.yaml")
    assert ("gw.yaml: routes[0].websocket: needs an upstream or split to tunnel to, or a "
            "filter that accepts the handshake (Reply.websocket)") in info.value.lines()


def test_a_route_with_filters_may_take_websocket_without_forwarding() -> None:
    # One of its filters may accept handshakes itself (Reply.websocket).
    load_text(BASE + "  - {match: {path: /a}, respond: {status: 404}, websocket: true,\n"
              "     filters: [{python: \"tests.http.ws_filters:EchoFilter\"}]}\n", "gw.yaml")
