"""Issue 18, finding 11 (and the low X-Real-IP/Forwarded item): the client address.

Before: `client_ip` was always the TCP peer, so behind a load balancer every client shared one
limiter bucket and one access-log address; `X-Real-IP` and `Forwarded` from any client reached
upstreams unchanged. Now, when the peer is one of `server.trusted_proxies`, the client is the
rightmost X-Forwarded-For hop that is not a trusted proxy; X-Real-IP and Forwarded from an
untrusted peer are removed.
"""

from __future__ import annotations

from support.gateway import GatewayProcess
from support.origin import Origin
from support.rawhttp import get

CONFIG = """\
listen: {listen}
server: {trusted_proxies: TRUST}
upstreams:
  app: {targets: ["ORIGIN"]}
routes:
  - name: limited
    match: {path_prefix: /status}
    upstream: app
    rate_limit: {rate: 1/h, burst: 1, key: client_ip}
  - {name: rest, match: {path_prefix: /}, upstream: app}
"""


def _gateway(origin: Origin, trust: str) -> GatewayProcess:
    return GatewayProcess.config(
        CONFIG.replace("ORIGIN", origin.address).replace("TRUST", trust))


def _status(gw: GatewayProcess, xff: str) -> int:
    return get(gw.port, "/status/200", [("X-Forwarded-For", xff)]).status


def test_behind_a_trusted_proxy_each_client_has_its_own_bucket(origin: Origin) -> None:
    with _gateway(origin, "[127.0.0.0/8, 10.0.0.0/8]") as gw:
        assert _status(gw, "198.51.100.1") == 200
        assert _status(gw, "198.51.100.2") == 200          # another client, another bucket
        assert _status(gw, "198.51.100.1") == 429          # the same client again
        # A hop added by another trusted proxy is skipped; a spoofed leftmost hop is not
        # the client.
        assert _status(gw, "203.0.113.9, 198.51.100.3, 10.1.2.3") == 200
        assert _status(gw, "6.6.6.6, 198.51.100.3") == 429
        echo = get(gw.port, "/echo", [("X-Forwarded-For", "198.51.100.7"),
                                      ("X-Real-IP", "198.51.100.7")]).json()
        sent = dict((n.lower(), v) for n, v in echo["headers"])
        assert sent["x-forwarded-for"] == "198.51.100.7, 127.0.0.1"
        assert sent["x-real-ip"] == "198.51.100.7"  # a trusted proxy's pass through


def test_without_trust_the_peer_is_the_client_and_its_claims_are_dropped(
        origin: Origin) -> None:
    with _gateway(origin, "[]") as gw:
        assert _status(gw, "198.51.100.1") == 200
        assert _status(gw, "198.51.100.2") == 429  # X-Forwarded-For is not believed
        echo = get(gw.port, "/echo", [("X-Forwarded-For", "198.51.100.7"),
                                      ("X-Real-IP", "198.51.100.7"),
                                      ("Forwarded", "for=198.51.100.7")]).json()
        sent = dict((n.lower(), v) for n, v in echo["headers"])
        assert sent["x-forwarded-for"] == "127.0.0.1"
        assert "x-real-ip" not in sent and "forwarded" not in sent
