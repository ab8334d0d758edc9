"""End to end: API keys and basic auth against consumers, several methods on one route,
allow-lists, the consumer header upstream, secrets kept out of /config and error messages."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator

import pytest
from tests.auth.authkit import request, seen_headers, sha256_ref
from tests.support.gateway import GatewayProcess, free_port
from tests.support.origin import Origin

ALICE_KEY = "ak-" + os.urandom(8).hex()
BOB_KEY = "bk-" + os.urandom(8).hex()
BOB_PASSWORD = "pw-" + os.urandom(6).hex()

CONFIG = """
listen: {listen}
admin: 127.0.0.1:%(admin)d
upstreams:
  app: {targets: [%(origin)s]}
consumers:
  alice:
    groups: [staff]
    api_keys: ["env:EDGEWARD_TEST_ALICE_KEY"]
    metrics: true
  bob:
    api_keys: ["%(bob_key)s"]
    password: "%(bob_password)s"
routes:
  - name: keys
    match: {path_prefix: /keys}
    upstream: app
    filters: [{api_key: {}}]
  - name: either
    match: {path_prefix: /either}
    upstream: app
    filters:
      - auth: {methods: [{basic: {}}, {api_key: {header: x-api-key, query: null}}]}
  - name: staff
    match: {path_prefix: /staff}
    upstream: app
    filters: [{auth: {methods: [{api_key: {}}], allow: {groups: [staff]}}}]
"""


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[GatewayProcess, int]]:
    os.environ["EDGEWARD_TEST_ALICE_KEY"] = ALICE_KEY
    admin = free_port()
    with Origin() as origin:
        text = CONFIG % {"admin": admin, "origin": origin.address,
                         "bob_key": sha256_ref(BOB_KEY), "bob_password": BOB_PASSWORD}
        with GatewayProcess.config(text) as gw:
            yield gw, admin


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def test_no_key_is_401_with_a_challenge(gateway: tuple[GatewayProcess, int]) -> None:
    gw, _ = gateway
    answer = request(gw.port, "/keys/x")
    assert answer.status == 401
    assert answer.json()["code"] == "unauthenticated"
    assert answer.all("www-authenticate") == ['Key realm="edgeward"']


def test_a_wrong_key_is_401_and_never_echoed(gateway: tuple[GatewayProcess, int]) -> None:
    gw, _ = gateway
    answer = request(gw.port, "/keys/x", {"apikey": "nope-" + ALICE_KEY})
    assert answer.status == 401 and answer.json()["code"] == "unauthenticated"
    assert ALICE_KEY.encode() not in answer.body


def test_keys_from_env_and_from_digest_admit_their_consumer(
        gateway: tuple[GatewayProcess, int]) -> None:
    gw, _ = gateway
    for key, name in ((ALICE_KEY, "alice"), (BOB_KEY, "bob")):
        answer = request(gw.port, "/keys/x", {"apikey": key, "x-consumer-name": "mallory"})
        assert answer.status == 200
        seen = seen_headers(answer)
        assert seen["x-consumer-name"] == [name]      # the client's copy was removed
        assert "apikey" not in seen                   # the key never reaches the upstream


def test_a_key_in_the_query_is_removed_before_forwarding(
        gateway: tuple[GatewayProcess, int]) -> None:
    gw, _ = gateway
    answer = request(gw.port, f"/keys/x?a=1&apikey={ALICE_KEY}&b=2")
    assert answer.status == 200
    assert answer.json()["target"] == "/keys/x?a=1&b=2"


def test_either_method_admits_and_none_gets_every_challenge(
        gateway: tuple[GatewayProcess, int]) -> None:
    gw, _ = gateway
    assert request(gw.port, "/either", basic("bob", BOB_PASSWORD)).status == 200
    by_key = request(gw.port, "/either", {"x-api-key": ALICE_KEY})
    assert by_key.status == 200 and seen_headers(by_key)["x-consumer-name"] == ["alice"]
    none = request(gw.port, "/either")
    assert none.status == 401
    assert none.all("www-authenticate") == ['Basic realm="edgeward", charset="UTF-8"',
                                            'Key realm="edgeward"']


def test_a_wrong_password_is_refused_and_the_password_not_forwarded(
        gateway: tuple[GatewayProcess, int]) -> None:
    gw, _ = gateway
    assert request(gw.port, "/either", basic("bob", "wrong")).status == 401
    assert request(gw.port, "/either", basic("nobody", BOB_PASSWORD)).status == 401
    good = request(gw.port, "/either", basic("bob", BOB_PASSWORD))
    assert "authorization" not in seen_headers(good)


def test_a_consumer_outside_the_allow_list_is_403(gateway: tuple[GatewayProcess, int]) -> None:
    gw, _ = gateway
    assert request(gw.port, "/staff", {"apikey": ALICE_KEY}).status == 200
    refused = request(gw.port, "/staff", {"apikey": BOB_KEY})
    assert refused.status == 403 and refused.json()["code"] == "forbidden"


def test_config_view_shows_no_secret(gateway: tuple[GatewayProcess, int]) -> None:
    gw, admin = gateway
    answer = request(admin, "/config")
    assert answer.status == 200
    assert BOB_PASSWORD.encode() not in answer.body
    assert sha256_ref(BOB_KEY).encode() not in answer.body
    assert b"<redacted>" in answer.body


def test_metrics_count_per_route_method_and_outcome(gateway: tuple[GatewayProcess, int]) -> None:
    gw, admin = gateway
    request(gw.port, "/staff", {"apikey": BOB_KEY})
    request(gw.port, "/keys/m", {"apikey": ALICE_KEY})
    request(gw.port, "/keys/m", {"apikey": BOB_KEY})
    text = request(admin, "/metrics").body.decode()
    assert ('edgeward_auth_requests_total{route="staff",method="api_key",outcome="forbidden"}'
            in text)
    assert 'edgeward_auth_requests_total{route="keys",method="api_key",outcome="ok"}' in text
    assert ('edgeward_auth_requests_total{route="keys",method="none",'
            'outcome="unauthenticated"}') in text
    # alice is configured with metrics: true, bob is not: only alice is a label value
    assert 'edgeward_consumer_requests_total{route="keys",consumer="alice"}' in text
    assert 'consumer="bob"' not in text
