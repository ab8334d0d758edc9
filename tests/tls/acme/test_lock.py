"""Order locks: one holder per name, released by its holder only, expiring in Redis."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from tests.support.redis_server import REDIS_SERVER, RedisServer

from edgeward.tls.acme.lock import FileOrderLock, RedisOrderLock


async def test_file_lock_is_exclusive_per_name(tmp_path: Path) -> None:
    one, two = FileOrderLock(str(tmp_path)), FileOrderLock(str(tmp_path))
    lease = await one.acquire("a.test", 60)
    assert lease is not None
    assert await two.acquire("a.test", 60) is None
    other = await two.acquire("b.test", 60)
    assert other is not None
    await lease.release()
    again = await two.acquire("a.test", 60)
    assert again is not None
    await again.release()
    await other.release()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("needs redis-server")
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


async def test_redis_lock_set_nx_px(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        one, two = RedisOrderLock(client), RedisOrderLock(client)
        lease = await one.acquire("a.test", 60)
        assert lease is not None
        assert await two.acquire("a.test", 60) is None
        assert 0 < int(redis_server.command("PTTL", "edgeward:acme:lock:a.test")) <= 60_000
        await lease.release()
        assert redis_server.command("EXISTS", "edgeward:acme:lock:a.test") == "0"
        stale = await one.acquire("b.test", 0.2)
        assert stale is not None
        await asyncio.sleep(0.35)                                # holder died: lock expired
        fresh = await two.acquire("b.test", 60)
        assert fresh is not None
        await stale.release()                                    # cannot free another's lock
        assert await one.acquire("b.test", 60) is None
        await fresh.release()
    finally:
        await client.aclose()
