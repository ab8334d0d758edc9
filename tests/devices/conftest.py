"""Fixtures the device test modules share: one real redis-server per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.cluster._cluster import RedisServer, redis_server


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server
