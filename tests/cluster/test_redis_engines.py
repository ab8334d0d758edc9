"""Gateway processes on real Redis deployments: a TLS-only redis-server with an ACL user
(the password given as a config key, never shown or logged), and a three-node Redis Cluster
shared by two gateways whose fleet-wide limit stays within its budget."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from tests.cluster._cluster import admin_port, flood, gateways, http_get, wait_admin
from tests.support.gateway import GatewayProcess
from tests.support.origin import Origin
from tests.support.redis_engines import RedisClusterNodes, TlsFiles, started, tls_redis
from tests.support.redis_server import RedisServer

USER, PASSWORD = "gw", "pw-Redis-9f3a1c"
RATE, BURST, WINDOW = 100, 30, 2.0


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, TlsFiles]]:
    server, files = tls_redis(tmp_path_factory.mktemp("redis-tls"),
                              ["--user", "default", "off",
                               "--user", USER, "on", f">{PASSWORD}", "~*", "+@all"])
    server.auth = (USER, PASSWORD)
    server.start()
    yield server, files
    server.stop()


def test_a_gateway_limits_through_tls_redis_and_never_shows_the_password(
        origin: Origin, tls_server: tuple[RedisServer, TlsFiles]) -> None:
    server, files = tls_server
    text = (
        "listen: {listen}\nadmin: {admin}\n"
        f"redis: {{url: 'rediss://127.0.0.1:{server.port}/0', username: {USER}, "
        f"password: '{PASSWORD}', timeout: 1s,\n"
        f"        tls: {{ca: '{files.ca}', client_cert: '{files.client_cert}', "
        f"client_key: '{files.client_key}'}}}}\n"
        f"upstreams:\n  o: {{targets: ['{origin.address}']}}\n"
        "routes:\n  - {name: tls, match: {path_prefix: /}, upstream: o,\n"
        "     rate_limit: {rate: 1/h, burst: 3, key: route, scope: global,"
        " on_store_failure: deny}}\n")
    with gateways([text]) as (gw,):
        wait_admin(admin_port(gw))
        statuses = [http_get(gw.port, "/x", timeout=5)[0] for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        assert server.script_calls() >= 5            # the decisions were Redis's
        status, body = http_get(admin_port(gw), "/config")
        assert status == 200 and PASSWORD not in body.decode()
        assert json.loads(body)["redis"]["password"] == "<redacted>"
        gw.stop()
        assert PASSWORD not in gw.stderr_text()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    nodes = RedisClusterNodes(tmp_path_factory.mktemp("cluster"))
    with started(nodes):
        yield nodes


def cluster_config(origin: Origin, nodes: RedisClusterNodes) -> str:
    seeds = ", ".join(f"'{a}'" for a in nodes.addresses)
    return (
        "listen: {listen}\nadmin: {admin}\n"
        f"redis: {{cluster: {{nodes: [{seeds}]}}, timeout: 1s, open_for: 500ms}}\n"
        f"upstreams:\n  o: {{targets: ['{origin.address}']}}\n"
        "routes:\n  - {name: fleet, match: {path_prefix: /}, upstream: o,\n"
        f"     rate_limit: {{rate: {RATE}/s, burst: {BURST}, key: route, scope: global,"
        " processes: 2}}\n")


@pytest.fixture(scope="module")
def fleet(origin: Origin, cluster: RedisClusterNodes) -> Iterator[list[GatewayProcess]]:
    with gateways([cluster_config(origin, cluster)] * 2) as gws:
        for gw in gws:
            wait_admin(admin_port(gw))
        yield gws


def test_two_gateways_share_one_limit_on_redis_cluster(
        fleet: list[GatewayProcess], cluster: RedisClusterNodes) -> None:
    calls_before = cluster.script_calls()
    res = flood([gw.port for gw in fleet], "/fleet", WINDOW)
    calls = cluster.script_calls() - calls_before
    assert not res.errors, res.errors[:5]
    assert set(res.statuses) <= {200, 429}, res.statuses
    budget = BURST + RATE * res.seconds
    assert res.total > 2 * budget, "the clients did not offer enough load"
    assert len(res.per_port) == 2, "both gateways admit some"
    assert res.admitted <= budget * 1.05, (res.admitted, budget)
    assert res.admitted >= 0.8 * (BURST + RATE * WINDOW), (res.admitted, res.statuses)
    # direct mode: one script call per request, on the one node owning the route's slot
    assert calls == res.total, (calls, res.total)
    busy = [n for n in cluster.nodes if n.script_calls() > 0]
    assert len(busy) == 1
