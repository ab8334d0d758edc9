"""The `redis:` block against real deployments started here: a TLS-only redis-server with an
ACL user (mutual TLS, certificates made at test time), a Sentinel group that fails over, and a
three-node Redis Cluster whose slot moves under the limiter (ASK, then MOVED)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.support.redis_engines import (
    MASTER_NAME,
    RedisClusterNodes,
    SentinelGroup,
    TlsFiles,
    make_tls_files,
    started,
    tls_redis,
    wait_for,
)
from tests.support.redis_server import RedisServer

from edgeward.config.text import load_text
from edgeward.ratelimit.config import RateLimitConfig, RedisConfig
from edgeward.ratelimit.redis_client import connect, describe
from edgeward.ratelimit.redis_store import GlobalLimiter
from edgeward.structs import ConfigError, load_struct

USER, PASSWORD = "edge", "s3cret-Redis-pw"
ACL = ["--user", "default", "off", "--user", USER, "on", f">{PASSWORD}", "~*", "+@all"]


def redis_config(raw: dict[str, object]) -> RedisConfig:
    return load_struct(RedisConfig, raw)


def limiter(cfg: RedisConfig, route: str, **overrides: object) -> GlobalLimiter:
    settings: dict[str, object] = {"rate": 1 / 3600, "burst": 10, "scope": "global"}
    settings.update(overrides)
    rl = RateLimitConfig(**settings)  # type: ignore[arg-type]
    return GlobalLimiter(connect(cfg), route=route, config=rl, redis=cfg)


async def admitted(lim: GlobalLimiter, key: str, count: int) -> int:
    return sum([(await lim.decide(key, time.monotonic())).allowed for _ in range(count)])


# -- config shapes and errors ----------------------------------------------------------------

@pytest.mark.parametrize(("raw", "problem"), [
    ({"sentinel": {"master": "m", "nodes": ["127.0.0.1:26379"]},
      "cluster": {"nodes": ["127.0.0.1:7000"]}}, "redis.cluster: give sentinel or cluster"),
    ({"url": "redis://10.0.0.1:6379/0", "cluster": {"nodes": ["127.0.0.1:7000"]}},
     "redis.url: a single Redis; with cluster the addresses are cluster.nodes"),
    ({"url": "redis://127.0.0.1:6379/0", "tls": {}},
     "redis.tls: set, but the url is redis:// (plain); use rediss:// for TLS"),
    ({"url": "redis://u:pw@127.0.0.1:6379/0", "password": "x"},
     "redis.password: the url carries a password too; give it once"),
    ({"username": "edge"}, "redis.password: username needs a password"),
    ({"url": "rediss://h:6379", "tls": {"client_cert": "/nonexistent/c.pem"}},
     "redis.tls.client_key: client_cert and client_key go together"),
    ({"url": "rediss://h:6379", "tls": {"ca": "/nonexistent/ca.pem"}},
     "redis.tls.ca: no such file: /nonexistent/ca.pem"),
    ({"sentinel": {"master": "", "nodes": []}}, "redis.sentinel.nodes: at least one Sentinel"),
    ({"sentinel": {"nodes": ["127.0.0.1:26379"]}}, "redis.sentinel.master"),
    ({"cluster": {"nodes": []}}, "redis.cluster.nodes: at least one cluster node"),
])
def test_bad_redis_blocks_are_refused_with_the_key_path(raw: dict[str, object],
                                                        problem: str) -> None:
    text = yaml.safe_dump({"redis": raw})
    with pytest.raises(ConfigError) as info:
        load_text(text, "gw.yaml")
    assert any(problem in line for line in info.value.lines()), info.value.lines()


def test_the_password_never_shows_in_repr_or_description() -> None:
    cfg = redis_config({"url": "rediss://127.0.0.1:6390/0", "username": USER,
                        "password": PASSWORD})
    assert PASSWORD not in repr(cfg)
    sentinel = redis_config({"sentinel": {"master": "m", "nodes": ["127.0.0.1:26379"],
                                          "password": PASSWORD}})
    assert PASSWORD not in repr(sentinel) and PASSWORD not in describe(sentinel)
    with_url = redis_config({"url": f"redis://{USER}:{PASSWORD}@127.0.0.1:6390/0"})
    assert PASSWORD not in describe(with_url)


# -- TLS and ACL -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, TlsFiles]]:
    server, files = tls_redis(tmp_path_factory.mktemp("redis-tls"), ACL)
    server.auth = (USER, PASSWORD)
    server.start()
    yield server, files
    server.stop()


def tls_block(files: TlsFiles, **extra: object) -> dict[str, object]:
    return {"ca": str(files.ca), "client_cert": str(files.client_cert),
            "client_key": str(files.client_key), **extra}


async def test_a_limit_over_tls_with_an_acl_user_from_the_config_keys(
        tls_server: tuple[RedisServer, TlsFiles]) -> None:
    server, files = tls_server
    cfg = redis_config({"url": f"rediss://127.0.0.1:{server.port}/0", "username": USER,
                        "password": PASSWORD, "tls": tls_block(files), "timeout": "1s"})
    lim = limiter(cfg, "tls-keys", burst=5)
    assert await lim.prepare()
    assert await admitted(lim, "k", 7) == 5
    assert lim.stats.fallback == 0
    assert server.command("EXISTS", lim.redis_key("k")) == "1"   # the count lives in Redis


async def test_a_limit_over_tls_with_the_user_in_the_url(
        tls_server: tuple[RedisServer, TlsFiles]) -> None:
    server, files = tls_server
    cfg = redis_config({"url": f"rediss://{USER}:{PASSWORD}@127.0.0.1:{server.port}/0",
                        "tls": tls_block(files), "timeout": "1s"})
    lim = limiter(cfg, "tls-url", burst=3)
    assert await lim.prepare()
    assert await admitted(lim, "k", 4) == 3


@pytest.mark.parametrize("case", ["wrong password", "untrusted CA", "no client cert"])
async def test_a_refused_connection_puts_the_limit_on_its_fallback(
        tls_server: tuple[RedisServer, TlsFiles], tmp_path: Path, case: str,
        caplog: pytest.LogCaptureFixture) -> None:
    server, files = tls_server
    tls = tls_block(files)
    password = PASSWORD
    if case == "wrong password":
        password = "not-the-password"
    elif case == "untrusted CA":
        other, _, _ = make_tls_files(tmp_path / "other")
        tls["ca"] = str(other.ca)
    else:
        del tls["client_cert"], tls["client_key"]
    cfg = redis_config({"url": f"rediss://127.0.0.1:{server.port}/0", "username": USER,
                        "password": password, "tls": tls, "timeout": "1s"})
    lim = limiter(cfg, f"refused-{case}", burst=2, on_store_failure="deny")
    with caplog.at_level(logging.WARNING, logger="edgeward.ratelimit.redis_store"):
        assert not await lim.prepare(timeout=2.0)
    decision = await lim.decide("k", time.monotonic())
    assert not decision.allowed and lim.stats.fallback == 1
    logged = caplog.text
    assert f"rate limit refused-{case}: Redis at rediss://127.0.0.1:{server.port}/0" in logged
    assert password not in logged


# -- Sentinel --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel"))
    with started(group):
        yield group


def master_settled(group: SentinelGroup, port: int) -> bool:
    state = group.sentinel.command("SENTINEL", "MASTER", MASTER_NAME).split()
    flags = state[state.index("flags") + 1]
    return group.master_port() == port and flags == "master"


async def test_a_sentinel_failover_moves_the_limit_to_the_new_master(
        sentinel: SentinelGroup) -> None:
    cfg = redis_config({"sentinel": {"master": MASTER_NAME, "nodes": [sentinel.sentinel.address]},
                        "timeout": "500ms", "open_for": "100ms"})
    lim = limiter(cfg, "sentinel", burst=10, on_store_failure="deny")
    assert await lim.prepare()
    assert await admitted(lim, "k", 4) == 4
    wait_for(lambda: sentinel.replica.command("EXISTS", lim.redis_key("k")) == "1", 5,
             "the count did not reach the replica")
    old_master, new_master = sentinel.master, sentinel.replica
    old_master.stop()
    allowed = 0     # on_store_failure is deny: only Redis admits
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not lim.store_up or lim.stats.fallback == 0:
        assert loop.time() < deadline, "the limiter never reached the new master"
        allowed += (await lim.decide("k", time.monotonic())).allowed
        await asyncio.sleep(0.02)
    assert lim.stats.fallback > 0           # the gap was answered by on_store_failure
    assert new_master.command("ROLE").startswith("master")
    # On the new master the count carried over by replication: 6 more of the burst of 10.
    assert allowed + await admitted(lim, "k", 8) == 6
    assert new_master.script_calls() > 0


# -- Cluster ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    nodes = RedisClusterNodes(tmp_path_factory.mktemp("cluster"))
    with started(nodes):
        yield nodes


async def test_limit_keys_spread_over_the_cluster_one_slot_per_call(
        cluster: RedisClusterNodes) -> None:
    cfg = redis_config({"cluster": {"nodes": [cluster.addresses[0]]}, "timeout": "1s"})
    lim = limiter(cfg, "spread", burst=2)
    assert await lim.prepare()
    keys = [f"client-{i}" for i in range(30)]
    for key in keys:
        assert await admitted(lim, key, 3) == 2
    holders = {n.port: int(n.command("DBSIZE")) for n in cluster.nodes}
    assert sum(holders.values()) == len(keys) and all(holders.values()), holders
    # one script call per decision, each on the node owning the key's hash-tag slot
    assert cluster.script_calls() == 3 * len(keys)
    assert lim.stats.fallback == 0


def _move_slot(cluster: RedisClusterNodes, key: str) -> tuple[RedisServer, RedisServer, int]:
    """Start migrating the slot of `key` to another node and move `key` there: the source now
    answers ASK for it. Returns (source, target, slot)."""
    slot = int(cluster.nodes[0].command("CLUSTER", "KEYSLOT", key))
    source = cluster.owner(slot)
    target = next(n for n in cluster.nodes if n is not source)
    target.command("CLUSTER", "SETSLOT", str(slot), "IMPORTING", cluster.node_id(source))
    source.command("CLUSTER", "SETSLOT", str(slot), "MIGRATING", cluster.node_id(target))
    assert source.command("MIGRATE", "127.0.0.1", str(target.port), "", "0", "5000",
                          "KEYS", key) == "OK"
    return source, target, slot


async def test_a_slot_migration_keeps_the_count_through_ask_and_moved(
        cluster: RedisClusterNodes) -> None:
    cfg = redis_config({"cluster": {"nodes": [cluster.addresses[0]]}, "timeout": "1s"})
    lim = limiter(cfg, "migrate", burst=9)
    assert await lim.prepare()
    key = lim.redis_key("k")
    assert await admitted(lim, "k", 3) == 3
    source, target, slot = _move_slot(cluster, key)
    asking = _asking_calls(target)
    assert await admitted(lim, "k", 3) == 3            # ASK: served by the importing node
    assert _asking_calls(target) > asking
    for node in cluster.nodes:                         # the migration ends: MOVED from now
        node.command("CLUSTER", "SETSLOT", str(slot), "NODE", cluster.node_id(target))
    assert await admitted(lim, "k", 5) == 3            # 9 in all, then refused
    assert lim.stats.fallback == 0 and lim.stats.store_errors == 0
    assert target.command("EXISTS", key) == "1" and source.script_calls() >= 3


def _asking_calls(node: RedisServer) -> int:
    text = node.command("INFO", "commandstats")
    for line in text.splitlines():
        if line.startswith("cmdstat_asking:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0
