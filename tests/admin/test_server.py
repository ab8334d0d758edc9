"""Every admin endpoint over real sockets against the in-memory backend."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from adminkit import Client, MemoryBackend  # noqa: E402

from edgeward.admin.server import AdminServer  # noqa: E402

TOKEN = "s3cret-token"
GOOD = """
upstreams:
  billing: {targets: [127.0.0.1:9100]}
routes:
  - {name: billing_api, match: {path_prefix: /billing}, upstream: billing}
"""
BAD = """
upstreams: {}
routes:
  - {name: broken, upstream: nowhere}
"""


@pytest.fixture
async def secured(backend: MemoryBackend) -> AsyncIterator[tuple[AdminServer, Client]]:
    srv = AdminServer(backend, token=TOKEN)
    await srv.start("127.0.0.1", 0)
    c = await Client.connect(srv.port)
    yield srv, c
    await c.close()
    await srv.close()


async def test_healthz_is_alive(client: Client) -> None:
    r = await client.request("GET", "/healthz")
    assert (r.status, r.json()) == (200, {"status": "ok"})


async def test_ready_turns_503_after_drain(client: Client, backend: MemoryBackend) -> None:
    assert (await client.request("GET", "/ready")).json() == {"status": "ready"}
    r = await client.request("POST", "/drain")
    assert (r.status, r.json()) == (202, {"draining": True})
    assert backend.drained
    r = await client.request("GET", "/ready")
    body = r.json()
    assert r.status == 503 and body["code"] == "not_ready" and body["request_id"]


async def test_metrics_in_prometheus_text_format(client: Client, backend: MemoryBackend) -> None:
    backend.traffic("orders_api", "orders", 3)
    r = await client.request("GET", "/metrics")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b'edgeward_requests_total{route="orders_api"} 3' in r.body


async def test_config_roundtrip_applies_and_refuses(client: Client, backend: MemoryBackend) -> None:
    before = (await client.request("GET", "/config")).json()
    assert set(before["upstreams"]) == {"orders", "users"}

    r = await client.request("POST", "/config", BAD.encode(),
                             {"Content-Type": "application/yaml"})
    body = r.json()
    assert r.status == 400 and body["code"] == "invalid_config"
    assert body["problems"] == ["routes[0].upstream: unknown upstream 'nowhere'"]
    assert body["request_id"] and "unchanged" in body["detail"]
    assert (await client.request("GET", "/config")).json() == before

    r = await client.request("POST", "/config", GOOD.encode())
    assert (r.status, r.json()) == (200, {"applied": True})
    assert [x["name"] for x in (await client.request("GET", "/routes")).json()] == ["billing_api"]
    reloads = (await client.request("GET", "/reloads")).json()
    assert [x["result"] for x in reloads[:2]] == ["applied", "refused"]
    assert reloads[1]["error"].startswith("routes[0].upstream")


async def test_config_body_must_be_utf8_yaml_text(client: Client, backend: MemoryBackend) -> None:
    r = await client.request("POST", "/config", b"routes: [\xff]")
    assert r.status == 400 and r.json()["problems"] == ["body is not UTF-8 text: byte 9"]
    r = await client.request("POST", "/config", b"")
    assert r.status == 400 and "empty" in r.json()["problems"][0]
    assert backend.applied_texts == [backend.applied_texts[0]]  # only the fixture's config


async def test_config_reloads_never_overlap(server: AdminServer, backend: MemoryBackend) -> None:
    backend.apply_delay = 0.05
    clients = [await Client.connect(server.port) for _ in range(4)]
    results = await asyncio.gather(*(c.request("POST", "/config", GOOD.encode())
                                     for c in clients))
    assert [r.status for r in results] == [200] * 4
    assert backend.most_applying == 1
    for c in clients:
        await c.close()


async def test_state_views(client: Client) -> None:
    ups = (await client.request("GET", "/upstreams")).json()
    assert [u["name"] for u in ups] == ["orders", "users"]
    ep = ups[0]["endpoints"][0]
    assert ep == {"address": "127.0.0.1:8001", "weight": 1, "healthy": True, "ejected": False,
                  "breaker": "closed", "in_flight": 0, "ewma_ms": 12.5,
                  "health_checked": False}
    limits = (await client.request("GET", "/ratelimits")).json()
    assert limits == [{"route": "orders_api", "rate": "100/s", "burst": 50}]
    reloads = (await client.request("GET", "/reloads")).json()
    assert reloads[0]["result"] == "applied" and len(reloads[0]["hash"]) == 16


async def test_unknown_path_and_wrong_method(client: Client) -> None:
    r = await client.request("GET", "/nope")
    assert r.status == 404 and r.json()["code"] == "not_found"
    r = await client.request("DELETE", "/config")
    assert r.status == 405 and r.json()["code"] == "method_not_allowed"
    assert r.headers["allow"] == "GET, POST"
    r = await client.request("GET", "/drain")
    assert r.status == 405 and r.headers["allow"] == "POST"


async def test_query_string_does_not_change_the_route(client: Client) -> None:
    assert (await client.request("GET", "/healthz?verbose=1")).status == 200


async def test_request_id_is_echoed_or_made(client: Client) -> None:
    r = await client.request("GET", "/nope", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123" and r.json()["request_id"] == "abc-123"
    r = await client.request("GET", "/nope", headers={"X-Request-Id": "bad id <script>"})
    assert r.json()["request_id"] != "bad id <script>"
    assert r.json()["request_id"] == r.headers["x-request-id"]


async def test_backend_failure_is_a_500_without_details(
    client: Client, backend: MemoryBackend
) -> None:
    backend.fail_views = True
    r = await client.request("GET", "/routes")
    body = r.json()
    assert r.status == 500 and body["code"] == "internal_error"
    assert "RuntimeError" in body["detail"] and "hunter2" not in body["detail"]
    assert (await client.request("GET", "/healthz")).status == 200  # connection still good


async def test_token_guards_every_post(
    secured: tuple[AdminServer, Client], backend: MemoryBackend
) -> None:
    srv, c = secured
    posts = sorted(path for path, method in srv.routes() if method == "POST")
    assert posts == ["/cache/purge", "/canaries/abort", "/canaries/pause", "/canaries/promote",
                     "/canaries/start", "/config", "/drain"]
    for path in posts:
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer"}):
            # Refused from the head: the body is never read, so the connection then closes.
            refused = await Client.connect(srv.port)
            r = await refused.request("POST", path, GOOD.encode(), headers)
            body = r.json()
            assert r.status == 401 and body["code"] == "unauthorized", (path, headers)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.headers["connection"] == "close" and await refused.closed_by_server()
            await refused.close()
    assert not backend.drained and len(backend.applied_texts) == 1
    assert not backend.purges
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await c.request("POST", "/config", GOOD.encode(), auth)).status == 200
    assert (await c.request("POST", "/drain", b"", auth)).status == 202
    assert backend.drained
    purge = await c.request("POST", "/cache/purge", b'{"keys": ["h/a"], "tags": ["t"]}',
                            {**auth, "Content-Type": "application/json"})
    assert purge.status == 200 and backend.purges == [("key", "h/a"), ("tag", "t")]


async def test_reads_need_no_token(secured: tuple[AdminServer, Client]) -> None:
    _, c = secured
    for path in ("/healthz", "/config", "/upstreams", "/api/series", "/"):
        assert (await c.request("GET", path)).status == 200, path


async def test_cross_site_pages_cannot_post(client: Client, backend: MemoryBackend) -> None:
    r = await client.request("POST", "/drain", b"", {"Origin": "http://evil.example"})
    assert r.status == 403 and r.json()["code"] == "forbidden_origin"
    assert not backend.drained
    r = await client.request("POST", "/drain", b"", {"Origin": "http://127.0.0.1"})
    assert r.status == 202  # the dashboard's own origin


async def test_openapi_is_served(client: Client) -> None:
    doc = (await client.request("GET", "/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")


async def test_dashboard_page_with_a_tight_csp(client: Client) -> None:
    r = await client.request("GET", "/")
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    assert b"<title>edgeward" in r.body
    assert "script-src 'sha256-" in r.headers["content-security-policy"]
    assert "connect-src 'self'" in r.headers["content-security-policy"]


async def test_series_follow_live_traffic(backend: MemoryBackend) -> None:
    srv = AdminServer(backend, token=None, series_step=0.1, series_horizon=3)
    await srv.start("127.0.0.1", 0)
    c = await Client.connect(srv.port)
    try:
        for _ in range(6):
            backend.traffic("orders_api", "orders", 20, errors=2, seconds=0.03)
            await asyncio.sleep(0.1)
        view: dict[str, Any] = (await c.request("GET", "/api/series")).json()
        assert view["step"] == 0.1 and len(view["t"]) == 30
        rps = [x for x in view["routes"]["orders_api"]["rps"] if x is not None]
        assert rps and max(rps) > 50  # ~200 req/s played
        errs = [x for x in view["routes"]["orders_api"]["err"] if x is not None]
        assert errs and all(abs(e - 0.1) < 0.02 for e in errs)
        p50 = [x for x in view["upstreams"]["orders"]["p50"] if x is not None]
        assert p50 and all(0.025 <= x <= 0.05 for x in p50)
        assert view["routes"]["users_api"]["rps"].count(0.0) >= 1
    finally:
        await c.close()
        await srv.close()


async def test_close_ends_open_connections(backend: MemoryBackend) -> None:
    srv = AdminServer(backend, token=None)
    await srv.start("127.0.0.1", 0)
    c = await Client.connect(srv.port)
    assert (await c.request("GET", "/healthz")).status == 200
    await asyncio.wait_for(srv.close(), 2)
    assert await c.closed_by_server()
    await c.close()


async def test_reuse_port_lets_two_workers_share_the_port(backend: MemoryBackend) -> None:
    a = AdminServer(backend, token=None)
    await a.start("127.0.0.1", 0, reuse_port=True)
    b = AdminServer(backend, token=None)
    try:
        await b.start("127.0.0.1", a.port, reuse_port=True)
        c = await Client.connect(a.port)
        assert (await c.request("GET", "/healthz")).status == 200
        await c.close()
    finally:
        await b.close()
        await a.close()


def test_empty_token_is_refused(backend: MemoryBackend) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        AdminServer(backend, token="")
