"""The admin API of a real gateway process: health, readiness, the redacted config, reloads
through POST /config, governance views, drain, the bearer token and the OpenAPI document."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from tests.observability.obskit import AdminGateway, Reply, get, wait_until
from tests.support.gateway import free_port
from tests.support.origin import Origin

TOKEN = "tok-7d1f0c2b9e"
REDIS_PASSWORD = "hunter2-pw"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def config_text(origin: Origin, extra_route: str = "") -> str:
    return f"""
listen: "{{listen}}"
admin: {{listen: "{{admin}}", token: {TOKEN}}}
redis: {{url: "redis://edge:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0"}}
upstreams:
  o:
    targets: ["{origin.address}"]
    circuit_breaker: {{min_requests: 50}}
routes:
  - name: api
    match: {{path_prefix: /api}}
    upstream: o
  - name: limited
    match: {{path_prefix: /lim}}
    upstream: o
    rate_limit: {{rate: 1/m, burst: 1}}
  - name: slow
    match: {{path: /slow}}
    upstream: o
{extra_route}"""


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with Origin() as o:
        yield o


@pytest.fixture(scope="module")
def admin_gw(origin: Origin) -> Iterator[AdminGateway]:
    with AdminGateway(config_text(origin)) as gw:
        yield gw


def rendered(gw: AdminGateway) -> str:
    """The config text as the gateway read it (placeholders filled in)."""
    return (gw.gw.workdir / "edgeward.yaml").read_text()


def test_health_and_readiness(admin_gw: AdminGateway) -> None:
    health = admin_gw.admin("GET", "/healthz")
    assert (health.status, health.json()) == (200, {"status": "ok"})
    ready = admin_gw.admin("GET", "/ready")
    assert (ready.status, ready.json()) == (200, {"status": "ready"})
    assert health.headers["content-type"].startswith("application/json")
    assert health.headers["cache-control"] == "no-store"
    assert health.headers["x-request-id"]


def test_config_view_redacts_the_redis_password_and_admin_token(admin_gw: AdminGateway) -> None:
    reply = admin_gw.admin("GET", "/config")
    assert reply.status == 200
    doc = reply.json()
    assert TOKEN not in reply.body.decode() and REDIS_PASSWORD not in reply.body.decode()
    assert doc["admin"]["token"] == "<redacted>"
    assert doc["redis"]["url"].startswith("redis://edge:<redacted>@127.0.0.1:")
    assert [r["name"] for r in doc["routes"]] == ["api", "limited", "slow"]  # the rest is shown
    for path in ("/routes", "/upstreams", "/ratelimits", "/reloads", "/metrics"):
        body = admin_gw.admin("GET", path).body.decode()
        assert TOKEN not in body and REDIS_PASSWORD not in body, path


def test_every_post_needs_the_bearer_token(admin_gw: AdminGateway) -> None:
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        for path, body in (("/config", rendered(admin_gw)), ("/drain", "")):
            reply = admin_gw.admin("POST", path, body, headers)
            assert reply.status == 401, (path, headers)
            assert reply.json()["code"] == "unauthorized"
            assert reply.headers["www-authenticate"].startswith("Bearer")
    assert admin_gw.admin("GET", "/ready").status == 200  # nothing was drained
    assert admin_gw.admin("GET", "/routes").status == 200  # GETs need no token


def test_post_config_valid_adds_a_route_invalid_keeps_the_old_config(
        admin_gw: AdminGateway, origin: Origin) -> None:
    gw = admin_gw
    assert get(gw.port, "/new/x").status == 404
    text = rendered(gw) + """  - name: fresh
    match: {path_prefix: /new}
    upstream: o
"""
    reply = gw.admin("POST", "/config", text, AUTH)
    assert (reply.status, reply.json()) == (200, {"applied": True})
    assert "fresh" in [r["name"] for r in gw.admin("GET", "/routes").json()]
    assert get(gw.port, "/new/x").status == 200

    bad = text.replace("upstream: o\n", "upstream: nope\n", 1) + "  - match: {path: 7\n"
    refused = gw.admin("POST", "/config", bad, AUTH)
    assert refused.status == 400
    doc = refused.json()
    assert doc["code"] == "invalid_config" and doc["request_id"]
    assert isinstance(doc["problems"], list) and doc["problems"]
    (problem,) = doc["problems"]
    assert "YAML syntax error" in problem and "line " in problem, problem

    bad2 = text.replace("upstream: o\n", "upstream: nope\n", 1)
    refused2 = gw.admin("POST", "/config", bad2, AUTH)
    assert refused2.status == 400
    assert any("routes" in p and "nope" in p for p in refused2.json()["problems"]), \
        refused2.json()
    # The last good config keeps serving, new route included.
    assert get(gw.port, "/api/still").status == 200
    assert get(gw.port, "/new/still").status == 200
    assert "fresh" in [r["name"] for r in gw.admin("GET", "/routes").json()]

    # POST /config persists to the watched file; the watcher then records "unchanged".
    reloads = [r for r in gw.admin("GET", "/reloads").json() if r["result"] != "unchanged"]
    assert [r["result"] for r in reloads[:3]] == ["refused", "refused", "applied"]
    assert reloads[0]["error"] and "nope" in reloads[0]["error"]
    assert reloads[2]["error"] is None
    assert reloads[-1]["result"] == "applied"  # the start


def test_routes_upstreams_and_ratelimits_views(admin_gw: AdminGateway) -> None:
    gw = admin_gw
    routes = {r["name"]: r for r in gw.admin("GET", "/routes").json()}
    assert routes["api"]["upstream"] == "o"
    assert routes["api"]["match"]["path_prefix"] == "/api"
    assert routes["limited"]["rate_limit"]["burst"] == 1

    statuses = [get(gw.port, "/lim").status for _ in range(3)]
    assert statuses == [200, 429, 429]
    (lim,) = [r for r in gw.admin("GET", "/ratelimits").json() if r["route"] == "limited"]
    assert lim["scope"] == "local"
    assert (lim["stats"]["allowed"], lim["stats"]["refused"]) == (1, 2)

    results: list[int] = []

    def in_flight_view() -> dict[str, Any] | None:
        ups = {u["name"]: u for u in gw.admin("GET", "/upstreams").json()}
        (ep,) = ups["o"]["endpoints"]
        return ep if ep["in_flight"] == 1 else None

    worker = threading.Thread(
        target=lambda: results.append(get(gw.port, "/slow?ms=2500").status))
    worker.start()
    ep = wait_until(in_flight_view, timeout=2.0, what="one request in flight")
    assert ep["healthy"] is True and ep["ejected"] is False
    assert ep["breaker"] == "closed"
    ups = {u["name"]: u for u in gw.admin("GET", "/upstreams").json()}
    assert ups["o"]["active_requests"] == 1
    assert ups["o"]["balance"] == "round_robin"
    worker.join()
    assert results == [200]
    assert wait_until(lambda: gw.admin("GET", "/upstreams").json()[0]["endpoints"][0][
        "in_flight"] == 0 or None, timeout=2, what="in-flight back to 0")


def test_openapi_lists_the_served_paths(admin_gw: AdminGateway) -> None:
    doc = admin_gw.admin("GET", "/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    assert {"/healthz", "/ready", "/metrics", "/config", "/routes", "/upstreams",
            "/ratelimits", "/reloads", "/drain", "/openapi.json"} <= set(paths)
    for path, ops in paths.items():
        if "get" in ops:
            assert admin_gw.admin("GET", path).status == 200, path
        if "post" in ops:
            # Listed POSTs exist: without the token they are refused, not unknown.
            assert admin_gw.admin("POST", path, "").status == 401, path
    missing = admin_gw.admin("GET", "/no-such-admin-path")
    assert (missing.status, missing.json()["code"]) == (404, "not_found")
    assert "/no-such-admin-path" not in paths


def test_drain_stops_accepting_and_lets_in_flight_finish(origin: Origin) -> None:
    with AdminGateway(config_text(origin)) as gw:
        results: list[Reply] = []
        slow = threading.Thread(target=lambda: results.append(
            get(gw.port, "/slow?ms=3000")))
        slow.start()
        wait_until(lambda: gw.admin("GET", "/upstreams").json()[0]["endpoints"][0][
            "in_flight"] == 1 or None, timeout=2.5, what="request in flight")
        reply = gw.admin("POST", "/drain", "", AUTH)
        assert (reply.status, reply.json()) == (202, {"draining": True})
        ready = gw.admin("GET", "/ready")
        assert (ready.status, ready.json()["code"]) == (503, "not_ready")
        with pytest.raises(OSError):  # the listener is closed: no new connection
            socket.create_connection(("127.0.0.1", gw.port), timeout=1).close()
        slow.join()
        assert len(results) == 1 and results[0].status == 200  # in flight finished
        assert gw.gw.wait(10) == 0  # then the drained process exits cleanly


def test_post_config_accepts_the_readme_retries_example(admin_gw: AdminGateway) -> None:
    text = rendered(admin_gw).replace("  - name: slow\n", """  - name: retried
    match: {path_prefix: /retried}
    upstream: o
    retries: {attempts: 3, on: [connect_failure, reset, 503]}
  - name: slow
""")
    reply = admin_gw.admin("POST", "/config", text, AUTH)
    assert reply.status == 200, reply.json()
