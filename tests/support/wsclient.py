"""What the WebSocket end-to-end modules share: a `websockets` client on a gateway, its
metrics and worker memory, and the route-slot scenario that tunnels and connections a filter
accepts both pass."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.observability.obskit import AdminGateway, value
from tests.support.until import until
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus


def ws_url(gw: AdminGateway, path: str) -> str:
    return f"ws://127.0.0.1:{gw.port}{path}"


def client(gw: AdminGateway, path: str, **kw: Any) -> Any:
    """A `websockets` connection (await it, or use it with `async with`)."""
    return connect(ws_url(gw, path), compression=None, ping_interval=None, max_size=None,
                   open_timeout=10, close_timeout=10, **kw)


def metric(gw: AdminGateway, name: str, **labels: str) -> float:
    return value(gw.scrape(), name, **labels)


def worker_rss(gw: AdminGateway) -> int:
    """RSS (KiB) of the worker serving the connections (the process itself with one worker)."""
    children = gw.gw.children()
    return gw.gw.rss_kb(children[0] if children else None)


async def two_slots_then_one_freed(gw: AdminGateway) -> None:
    """On the route `limited` (max_tunnels 2) under /limited/: two connections hold both
    slots, a third is refused 503 websocket_limit, a close gives a slot back, and a new
    connection gets it and echoes."""
    first = await client(gw, "/limited/1")
    second = await client(gw, "/limited/2")
    assert metric(gw, "edgeward_websocket_tunnels_open", route="limited") == 2
    with pytest.raises(InvalidStatus) as refused:
        async with client(gw, "/limited/3"):
            pass
    assert refused.value.response.status_code == 503
    assert json.loads(refused.value.response.body)["code"] == "websocket_limit"
    await first.close()
    await until(lambda: metric(gw, "edgeward_websocket_tunnels_open", route="limited") < 2,
                "a slot given back")
    async with client(gw, "/limited/4") as third:
        await third.send("in")
        assert await third.recv() == "in"
    await second.close()
