"""Issue 18, finding 10: a registry weight cannot make a balancer unbounded.

Before: a registry entry with weight 1,000,000 on a `ring_hash` upstream built a ring of a
million points: the worker stalled ~2 s and grew by ~160 MB. Now registry weights are clamped
to 65,535 and the ring is scaled to stay within 4 x `ring_size` points (plus one per endpoint):
the worker keeps answering, both endpoints take their keys, and RSS barely moves.
"""

from __future__ import annotations

import http.client
import json

from tests.cluster._cluster import get_json, wait_admin, wait_until
from tests.fixtures_etcd import EtcdServer, etcd_private_fixture
from tests.support.gateway import GatewayProcess, free_port
from tests.support.origin import Origin

__all__ = ["etcd_private_fixture"]

PREFIX = "/edgeward/services/orders/"


def weights(admin: int) -> dict[str, int]:
    ups = get_json(admin, "/upstreams")
    assert isinstance(ups, list)
    return {e["address"]: e["weight"] for u in ups for e in u["endpoints"]}


def test_a_huge_registry_weight_leaves_the_ring_bounded(etcd_private: EtcdServer) -> None:
    admin = free_port()
    with Origin() as heavy, Origin() as light, GatewayProcess.config(
            "listen: {listen}\n"
            f"admin: 127.0.0.1:{admin}\n"
            f"etcd: {{endpoints: ['{etcd_private.url}'], timeout: 2s}}\n"
            "upstreams:\n  orders:\n    discovery: {etcd: orders}\n"
            "    balance: ring_hash\n    hash_on: 'header:x-user'\n"
            "routes:\n  - {name: orders, upstream: orders}\n") as gw:
        wait_admin(admin)
        etcd_private.put(PREFIX + light.address,
                         json.dumps({"address": light.address, "weight": 1}))
        wait_until(lambda: weights(admin) == {light.address: 1}, timeout=10)
        before_kb = gw.rss_kb()

        etcd_private.put(PREFIX + heavy.address,
                         json.dumps({"address": heavy.address, "weight": 1_000_000}))
        wait_until(lambda: len(weights(admin)) == 2, timeout=10)
        for i in range(300):
            conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
            try:
                conn.request("GET", "/echo", headers={"x-user": f"user-{i}"})
                reply = conn.getresponse()
                reply.read()
            finally:
                conn.close()
            assert reply.status == 200
        grown_kb = gw.rss_kb() - before_kb
        assert grown_kb < 32 * 1024, f"RSS grew by {grown_kb} KiB"  # was ~160,000 KiB
        assert len(heavy.requests) + len(light.requests) == 300
        assert len(heavy.requests) > 290  # 65,535 : 1
        assert weights(admin) == {light.address: 1, heavy.address: 65_535}  # clamped
