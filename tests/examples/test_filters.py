"""The example filters under examples/filters, in a real gateway, against a real origin and a
real Redis: what their docstrings promise, and the filter API's guarantees they show (config
read with key paths, local replies, waiting without blocking other requests)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.redis_server import RedisServer

from support.gateway import GatewayProcess, edgeward_command
from support.origin import Origin
from support.rawhttp import get

EXAMPLES = str(Path(__file__).resolve().parents[2] / "examples" / "filters")
ENV = {"PYTHONPATH": EXAMPLES}

TENANT = """\
listen: {listen}
filters:
  tenant: {python: "tenant:Tenant", config: {tenants: [acme, globex]}}
upstreams:
  app: {targets: ["ORIGIN"]}
routes:
  - {name: all, match: {path_prefix: /}, upstream: app, filters: [tenant]}
"""

KEYS = """\
listen: {listen}
upstreams:
  app: {targets: ["ORIGIN"]}
routes:
  - name: all
    match: {path_prefix: /}
    upstream: app
    filters:
      - python: "api_keys:ApiKeys"
        config: {redis: "REDIS", ttl: 60s}
"""


def _sent(resp_json: dict[str, list[list[str]]]) -> dict[str, str]:
    return {n.lower(): v for n, v in resp_json["headers"]}


@pytest.fixture(scope="module")
def tenant_gw(origin: Origin) -> Iterator[GatewayProcess]:
    with GatewayProcess.config(TENANT.replace("ORIGIN", origin.address), env=ENV) as g:
        yield g


def test_known_tenants_pass_tagged_both_ways(tenant_gw: GatewayProcess) -> None:
    resp = get(tenant_gw.port, "/echo", [("X-Tenant", "globex")], host="acme.api.test")
    assert resp.status == 200
    assert _sent(resp.json())["x-tenant"] == "acme"  # the client's copy was replaced
    assert resp.header("x-tenant") == "acme"


def test_unknown_tenants_get_the_filters_own_error(tenant_gw: GatewayProcess,
                                                   origin: Origin) -> None:
    before = origin.mark()
    resp = get(tenant_gw.port, "/echo", host="initech.api.test")
    assert resp.status == 403
    doc = resp.json()
    assert doc["code"] == "unknown_tenant" and "initech" in doc["detail"]
    assert doc["request_id"] == resp.header("x-request-id")
    assert origin.mark()[1] == before[1]  # nothing was forwarded


def test_a_bad_filter_config_is_refused_with_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(TENANT.replace("{listen}", "127.0.0.1:1").replace("ORIGIN", "127.0.0.1:2")
                    .replace("tenants: [acme, globex]", "tenants: [Acme], colour: red"))
    done = subprocess.run([*edgeward_command(), "validate", str(path)], capture_output=True,
                          text=True, env={**__import__("os").environ, **ENV}, check=False)
    assert done.returncode == 1
    assert "filters.tenant.config.colour: unknown key" in done.stdout + done.stderr


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def test_api_keys_wait_for_redis_and_then_answer_from_the_cache(
        origin: Origin, redis: RedisServer) -> None:
    redis.command("HSET", "api-keys", "k-123", "acme-corp")
    config = KEYS.replace("ORIGIN", origin.address).replace("REDIS", redis.url)
    with GatewayProcess.config(config, env=ENV) as gw:
        resp = get(gw.port, "/echo", [("X-Api-Key", "k-123")])
        assert resp.status == 200
        sent = _sent(resp.json())
        assert sent["x-account"] == "acme-corp" and "x-api-key" not in sent
        assert get(gw.port, "/echo", [("X-Api-Key", "nope")]).json()["code"] == "api_key_unknown"
        missing = get(gw.port, "/echo")
        assert missing.status == 401 and missing.header("www-authenticate") == "ApiKey"
        # Cached: the key keeps working with Redis gone (a lookup would now fail).
        redis.stop()
        try:
            assert get(gw.port, "/echo", [("X-Api-Key", "k-123")]).status == 200
        finally:
            redis.start()


def test_a_waiting_filter_does_not_hold_other_requests(origin: Origin,
                                                       redis: RedisServer) -> None:
    """While one request waits on Redis (paused with CLIENT PAUSE), another is answered."""
    redis.command("HSET", "api-keys", "k-1", "a")
    config = KEYS.replace("ORIGIN", origin.address).replace("REDIS", redis.url)
    with GatewayProcess.config(config, env=ENV) as gw:
        assert get(gw.port, "/echo", [("X-Api-Key", "k-1")]).status == 200  # now cached
        redis.command("CLIENT", "PAUSE", "3000", "ALL")
        slow: list[int] = []
        waiting = threading.Thread(
            target=lambda: slow.append(get(gw.port, "/echo", [("X-Api-Key", "k-2")]).status))
        waiting.start()
        fast = get(gw.port, "/echo", [("X-Api-Key", "k-1")])  # answered while k-2 waits
        assert fast.status == 200 and not slow
        waiting.join()
        assert slow == [401]
