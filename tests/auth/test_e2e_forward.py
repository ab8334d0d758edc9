"""End to end: forward auth against a real auth service (admit with copied headers, the
service's refusal passed on, decisions cached by key, failure modes), and per-consumer
rate limits keyed by the authenticated consumer."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from tests.auth.authkit import AuthService, request, seen_headers
from tests.support.gateway import GatewayProcess
from tests.support.origin import Origin

CONFIG = """
listen: {listen}
upstreams:
  app: {targets: [%(origin)s]}
  authsvc: {targets: [%(auth)s]}
  gone: {targets: [127.0.0.1:1]}
routes:
  - name: checked
    match: {path_prefix: /checked}
    upstream: app
    filters:
      - forward_auth:
          upstream: authsvc
          path: /verify
          timeout: 2s
          response_headers: [x-auth-user, x-auth-role]
          consumer_header: x-auth-user
  - name: cached
    match: {path_prefix: /cached}
    upstream: app
    filters:
      - forward_auth:
          {upstream: authsvc, timeout: 2s, cache: {key: [header:authorization], ttl: 1h}}
  - name: deny
    match: {path_prefix: /deny}
    upstream: app
    filters: [{forward_auth: {upstream: gone}}]
  - name: allow
    match: {path_prefix: /allow}
    upstream: app
    filters: [{forward_auth: {upstream: gone, failure_mode: allow}}]
"""


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[GatewayProcess, AuthService]]:
    service = AuthService()
    with Origin() as origin:
        with GatewayProcess.config(CONFIG % {"origin": origin.address,
                                             "auth": service.address}) as gw:
            yield gw, service
    service.stop()


def test_admitted_with_the_service_headers_and_consumer(setup) -> None:  # type: ignore[no-untyped-def]
    gw, service = setup
    answer = request(gw.port, "/checked/a?q=1", {"authorization": "Bearer good-carol",
                                                 "x-auth-role": "admin"})
    assert answer.status == 200
    seen = seen_headers(answer)
    assert seen["x-auth-user"] == ["carol"]
    assert seen["x-auth-role"] == ["reader"]         # the client's "admin" was removed
    assert seen["x-consumer-name"] == ["carol"]
    check = service.checks[-1].decode("latin-1").lower()
    assert check.startswith("get /verify http/1.1")
    assert "x-forwarded-uri: /checked/a?q=1" in check
    assert "x-forwarded-method: get" in check
    assert "authorization: bearer good-carol" in check


def test_a_refusal_is_the_services_answer(setup) -> None:  # type: ignore[no-untyped-def]
    gw, _ = setup
    answer = request(gw.port, "/checked", {"authorization": "Bearer bad"})
    assert answer.status == 401
    assert answer.json() == {"error": "who are you"}
    assert answer.header("www-authenticate") == 'Bearer realm="sso"'


def test_decisions_are_cached_by_key(setup) -> None:  # type: ignore[no-untyped-def]
    gw, service = setup
    before = service.count()
    for _ in range(5):
        assert request(gw.port, "/cached", {"authorization": "Bearer good-dan"}).status == 200
        assert request(gw.port, "/cached", {"authorization": "Bearer nope"}).status == 401
    assert service.count() - before == 2   # one check per distinct key
    assert request(gw.port, "/cached", {"authorization": "Bearer good-eve"}).status == 200
    assert service.count() - before == 3


def test_an_unreachable_service_denies_by_default(setup) -> None:  # type: ignore[no-untyped-def]
    gw, _ = setup
    denied = request(gw.port, "/deny")
    assert denied.status == 503 and denied.json()["code"] == "auth_unavailable"
    assert request(gw.port, "/allow").status == 200


RATE = """
listen: {listen}
upstreams:
  app: {targets: [%(origin)s]}
consumers:
  alice: {api_keys: ["env:EDGEWARD_TEST_RL_ALICE"], rate_limit: {rate: 100/s, burst: 50}}
  bob: {api_keys: ["env:EDGEWARD_TEST_RL_BOB"]}
routes:
  - match: {path_prefix: /}
    upstream: app
    rate_limit: {rate: 1/m, burst: 2, key: consumer}
    filters: [{api_key: {}}]
"""


def test_rate_limits_key_on_the_authenticated_consumer_with_overrides() -> None:
    os.environ["EDGEWARD_TEST_RL_ALICE"] = "alice-" + os.urandom(6).hex()
    os.environ["EDGEWARD_TEST_RL_BOB"] = "bob-" + os.urandom(6).hex()
    alice = {"apikey": os.environ["EDGEWARD_TEST_RL_ALICE"]}
    bob = {"apikey": os.environ["EDGEWARD_TEST_RL_BOB"]}
    with Origin() as origin, GatewayProcess.config(RATE % {"origin": origin.address}) as gw:
        # bob has the route's budget (burst 2); a forged consumer header changes nothing
        codes = [request(gw.port, "/", {**bob, "x-consumer-name": f"x{i}",
                                        "x-consumer-id": f"x{i}"}).status for i in range(3)]
        assert codes == [200, 200, 429]
        # alice has her own budget: 50 at once
        assert all(request(gw.port, "/", alice).status == 200 for _ in range(10))
        assert request(gw.port, "/", bob).status == 429
