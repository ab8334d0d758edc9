"""The device mode on a real three-node Redis Cluster: shadows, the change feed (one reader
per shard stream: a cluster refuses XREAD across slots), sessions and long polls, with two
gateway processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from tests.cluster._cluster import gateways
from tests.devices._client import call
from tests.support.gateway import GatewayProcess
from tests.support.redis_engines import RedisClusterNodes, started
from websockets.asyncio.client import connect

WAIT = 10.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    nodes = RedisClusterNodes(tmp_path_factory.mktemp("cluster"))
    with started(nodes):
        yield nodes


@pytest.fixture(scope="module")
def pair(cluster: RedisClusterNodes) -> Iterator[list[GatewayProcess]]:
    seeds = ", ".join(f"'{a}'" for a in cluster.addresses)
    text = ("listen: {listen}\nadmin: {admin}\n"
            f"redis: {{cluster: {{nodes: [{seeds}]}}, timeout: 1s}}\n"
            "devices: {shards: 6}\n"
            "routes:\n  - {match: {path_prefix: /}, devices: true, websocket: true}\n")
    with gateways([text, text]) as gws:
        yield gws


async def test_sessions_and_long_polls_follow_changes_on_a_cluster(
        pair: list[GatewayProcess]) -> None:
    a, b = pair[0].port, pair[1].port
    names = [f"c-{i}" for i in range(6)]   # spread over the shards, so over the nodes
    for name in names:
        status, _, _ = await call(b, "PATCH", f"/devices/{name}/shadow",
                                  {"state": {"desired": {"v": 1}}})
        assert status == 200
    poll = asyncio.ensure_future(call(a, "GET", f"/devices/{names[0]}/shadow/delta"
                                                "?version=1&wait=8"))
    sessions = [await connect(f"ws://127.0.0.1:{a}/devices/{n}/connect", open_timeout=WAIT)
                for n in names]
    try:
        for ws in sessions:
            first = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            assert (first["version"], first["state"]) == (1, {"v": 1})
            await ws.send(json.dumps({"type": "ack", "shadow": "", "version": 1}))
        for name in names:
            await call(b, "PATCH", f"/devices/{name}/shadow", {"state": {"desired": {"v": 2}}})
        for ws in sessions:
            second = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            assert (second["version"], second["state"]) == (2, {"v": 2})
        status, _, doc = await poll
        assert (status, doc["version"], doc["delta"]) == (200, 2, {"v": 2})
    finally:
        for ws in sessions:
            await ws.close()
