"""Issue 18, finding 6: limiter keys are bounded in size and the key table in bytes.

Before: 1,500 distinct 30 KB `x-api-key` values added 43.5 MB to the worker (at the default
100,000 keys that is ~3 GB per limiter per worker) and each value was kept whole as a key. Now
values are hashed to 32 characters: with the default bounds the same flood barely moves the
worker's RSS, and a route with a small `max_memory` keeps its table within it by its own
accounting (admin `/ratelimits`).
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest
from tests.observability.obskit import AdminGateway
from tests.support.origin import Origin

FLOOD = 1_500
VALUE_BYTES = 30 * 1024
MAX_MEMORY = 256 * 1024


def gateway(origin: Origin, rate_limit_extra: str = "") -> AdminGateway:
    return AdminGateway(f"""
listen: "{{listen}}"
admin: "{{admin}}"
upstreams:
  o: {{targets: ["{origin.address}"]}}
routes:
  - name: api
    upstream: o
    rate_limit: {{rate: 1/m, burst: 10, key: "header:x-api-key"{rate_limit_extra}}}
""")


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with Origin() as o:
        yield o


def flood(port: int, status: int, tag: str) -> None:
    """FLOOD requests for /status/<status>, each with its own 30 KB key (kept: 1/m, burst 10
    leaves every bucket far from full, so no key is idle)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for i in range(FLOOD):
            value = f"{tag}{i:06d}".ljust(VALUE_BYTES, "k")
            conn.request("GET", f"/status/{status}", headers={"x-api-key": value})
            reply = conn.getresponse()
            reply.read()
            assert reply.status == status
    finally:
        conn.close()


def table(gw: AdminGateway, route: str) -> dict[str, int]:
    views = {v["route"]: v for v in gw.admin("GET", "/ratelimits").json()}
    keys: dict[str, int] = views[route]["keys"]
    return keys


def test_the_flood_leaves_the_worker_rss_bounded(origin: Origin) -> None:
    """Default bounds (the config of the report)."""
    with gateway(origin) as gw:
        flood(gw.port, 304, "warm")  # buffers and allocator arenas reach their working size
        before_kb = gw.gw.rss_kb()
        flood(gw.port, 304, "new")
        grown_kb = gw.gw.rss_kb() - before_kb
        assert grown_kb < 8 * 1024, f"RSS grew by {grown_kb} KiB"  # was ~44,000 KiB
        keys = table(gw, "api")
    assert keys["keys"] == 2 * FLOOD and keys["bytes"] <= 2 * FLOOD * 400  # ~300 B a key


def test_a_small_max_memory_bounds_the_table(origin: Origin) -> None:
    with gateway(origin, f", max_memory: {MAX_MEMORY}") as gw:
        flood(gw.port, 204, "small")
        keys = table(gw, "api")
    assert keys["bytes"] <= MAX_MEMORY == keys["max_bytes"]
    assert keys["keys"] + keys["evictions"] + keys["expired"] == FLOOD
    assert keys["keys"] >= MAX_MEMORY // 400
