"""Fixtures for the admin tests: a backend with a config applied, a started server, a client."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from adminkit import CONFIG, Client, MemoryBackend  # noqa: E402

from edgeward.admin.server import AdminServer  # noqa: E402


@pytest.fixture
async def backend() -> MemoryBackend:
    b = MemoryBackend()
    assert await b.apply_config(CONFIG) == []
    return b


@pytest.fixture
async def server(backend: MemoryBackend) -> AsyncIterator[AdminServer]:
    srv = AdminServer(backend, token=None)
    await srv.start("127.0.0.1", 0)
    yield srv
    await srv.close()


@pytest.fixture
async def client(server: AdminServer) -> AsyncIterator[Client]:
    c = await Client.connect(server.port)
    yield c
    await c.close()
