"""Subrequests over the data plane's own codec and pools, against a real origin."""

from __future__ import annotations

import asyncio
import json

import pytest

from edgeward.config.schema import UpstreamConfig
from edgeward.proxy.cluster import Cluster
from edgeward.proxy.subrequest import SubrequestError, fetch, make_head
from edgeward.structs import load_struct
from support.gateway import free_port
from support.origin import Origin


def _cluster(address: str, loop: asyncio.AbstractEventLoop) -> Cluster:
    return Cluster("auth", load_struct(UpstreamConfig, {"targets": [address]}), loop)


async def test_a_subrequest_reaches_the_origin_and_its_connection_is_reused(
        origin: Origin) -> None:
    cluster = _cluster(origin.address, asyncio.get_running_loop())
    mark = origin.mark()
    for i in range(3):
        head = make_head("POST", f"/echo?i={i}", "auth.test", [("x-original-uri", "/a")], b"hi")
        got = await fetch(cluster, head, b"hi", timeout=5)
        assert got.status == 200
        echo = json.loads(got.body)
        assert echo["target"] == f"/echo?i={i}"
        assert ["x-original-uri", "/a"] in echo["headers"]
        assert echo["body_length"] == 2
    connections, _, _ = origin.mark()
    assert connections - mark[0] == 1  # one connection served all three
    cluster.close()


async def test_a_large_body_and_a_dead_upstream_are_errors(origin: Origin) -> None:
    loop = asyncio.get_running_loop()
    big = _cluster(origin.address, loop)
    with pytest.raises(SubrequestError) as info:
        await fetch(big, make_head("GET", "/big?bytes=100000", "a.test"), timeout=5,
                    max_body=1000)
    assert info.value.code == "bad_gateway"
    dead = _cluster(f"127.0.0.1:{free_port()}", loop)
    with pytest.raises(SubrequestError) as info:
        await fetch(dead, make_head("GET", "/", "a.test"), timeout=5)
    assert info.value.code == "upstream_connect_failed"
    big.close()
    dead.close()


async def test_a_slow_upstream_times_out(origin: Origin) -> None:
    cluster = _cluster(origin.address, asyncio.get_running_loop())
    with pytest.raises(SubrequestError) as info:
        await fetch(cluster, make_head("GET", "/slow?ms=2000", "a.test"), timeout=0.2)
    assert info.value.code == "upstream_timeout"
    cluster.close()
