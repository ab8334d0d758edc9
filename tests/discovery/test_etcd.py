from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable

import aetcd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fixtures_etcd import (  # noqa: F401 - fixtures
    EtcdServer,
    etcd_fixture,
    etcd_private_fixture,
    free_port,
)

from edgeward.balance.endpoint import MAX_WEIGHT
from edgeward.discovery.etcd import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_CAP,
    DEFAULT_ETCD_TIMEOUT,
    Backoff,
    EtcdConfig,
    EtcdRegistryWatcher,
    EtcdUnavailable,
    parse_registry_value,
)
from edgeward.structs import ConfigError, load_struct

Endpoints = list[tuple[str, int, int]]


async def until(pred: Callable[[], bool], timeout: float = 1.0) -> float:
    """Wait until pred() holds; return the time it took. Fails the test after `timeout`."""
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def entry(address: str, weight: int = 1) -> str:
    return json.dumps({"address": address, "weight": weight})


# --- Backoff (sans-I/O) --------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    base=st.floats(0.001, 2.0),
    factor=st.floats(1.0, 100.0),
    seed=st.integers(0, 2**32),
    n=st.integers(1, 80),
)
def test_backoff_delays_grow_within_jitter_band_and_never_exceed_cap(
    base: float, factor: float, seed: int, n: int
) -> None:
    cap = base * factor
    b = Backoff(base, cap, random.Random(seed))
    for i in range(n):
        nominal = min(cap, base * 2.0**i)
        d = b.next_delay()
        assert nominal / 2 <= d <= nominal + 1e-12
        assert d <= cap + 1e-12


def test_backoff_reset_starts_over_and_defaults_reach_cap() -> None:
    b = Backoff(rng=random.Random(1))
    first = [b.next_delay() for _ in range(12)]
    assert first[0] <= DEFAULT_BACKOFF_BASE
    assert first[-1] >= DEFAULT_BACKOFF_CAP / 2
    b.reset()
    assert b.next_delay() <= DEFAULT_BACKOFF_BASE


def test_backoff_rejects_bad_parameters_naming_them() -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError, match="cap"):
        Backoff(1.0, 0.5)


# --- config ----------------------------------------------------------------------------------


def test_etcd_config_defaults_are_pinned() -> None:
    cfg = load_struct(EtcdConfig, {})
    assert cfg.endpoints == [("127.0.0.1", 2379)]
    assert cfg.timeout == DEFAULT_ETCD_TIMEOUT == 5.0
    assert (DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_CAP) == (0.1, 5.0)


def test_etcd_config_reads_yaml_shape() -> None:
    cfg = load_struct(EtcdConfig, {"endpoints": ["10.0.0.1:2379", "10.0.0.2:2379"],
                                   "timeout": "2s"}, path="etcd")
    assert cfg.endpoints == [("10.0.0.1", 2379), ("10.0.0.2", 2379)]
    assert cfg.timeout == 2.0


def test_etcd_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        load_struct(EtcdConfig, {"endpoints": [], "timeout": "0s"}, path="etcd")
    text = str(err.value)
    assert "etcd.endpoints" in text and "etcd.timeout" in text
    with pytest.raises(ConfigError, match=r"etcd\.endpoints\[0\]"):
        load_struct(EtcdConfig, {"endpoints": ["nohost"]}, path="etcd")


def test_malformed_registry_values_are_skipped() -> None:
    assert parse_registry_value(b"k", entry("10.0.0.1:80", 3).encode()) == ("10.0.0.1", 80, 3)
    assert parse_registry_value(b"k", b'{"address": "10.0.0.1:80"}') == ("10.0.0.1", 80, 1)
    for bad in (b"not json", b"{}", b'{"address": "x"}', entry("a:1", 0).encode(),
                b'{"address": "a:1", "weight": true}', b"[]"):
        assert parse_registry_value(b"k", bad) is None


# --- watcher against a real etcd --------------------------------------------------------------


async def test_watcher_unreachable_at_start_names_the_endpoint() -> None:
    port = free_port()
    watcher = EtcdRegistryWatcher([("127.0.0.1", port)], "svc", lambda eps: None, timeout=1.0)
    with pytest.raises(EtcdUnavailable, match=f"127.0.0.1:{port}") as err:
        await watcher.start()
    assert isinstance(err.value, ConnectionError)
    await watcher.close()


async def test_watcher_sees_initial_list_then_add_and_remove(etcd: EtcdServer) -> None:
    etcd.put("/edgeward/services/orders/10.0.0.1:80", entry("10.0.0.1:80", 2))
    etcd.put("/edgeward/services/ordersx/10.9.9.9:80", entry("10.9.9.9:80"))  # other service
    updates: list[Endpoints] = []
    async with EtcdRegistryWatcher([etcd.endpoint], "orders", updates.append) as watcher:
        assert updates == [[("10.0.0.1", 80, 2)]]
        etcd.put("/edgeward/services/orders/10.0.0.2:80", entry("10.0.0.2:80"))
        took = await until(lambda: len(updates) == 2)
        assert took < 1.0
        assert updates[-1] == [("10.0.0.1", 80, 2), ("10.0.0.2", 80, 1)]
        etcd.etcdctl("del", "/edgeward/services/orders/10.0.0.1:80")
        await until(lambda: len(updates) == 3)
        assert updates[-1] == [("10.0.0.2", 80, 1)]
        assert watcher.endpoints == [("10.0.0.2", 80, 1)]


async def test_watcher_gives_one_update_per_transaction(etcd: EtcdServer) -> None:
    updates: list[Endpoints] = []
    async with EtcdRegistryWatcher([etcd.endpoint], "batch", updates.append):
        async with aetcd.Client(host="127.0.0.1", port=etcd.port) as client:
            puts = [client.transactions.put(f"/edgeward/services/batch/10.0.0.{i}:80".encode(),
                                            entry(f"10.0.0.{i}:80").encode()) for i in (1, 2, 3)]
            await client.transaction(compare=[], success=puts, failure=[])
        await until(lambda: len(updates) == 2)
        await asyncio.sleep(0.2)
    assert len(updates) == 2
    assert [h for h, _, _ in updates[-1]] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


async def test_watcher_keeps_list_while_etcd_down_and_resumes_without_missing_writes(
    etcd_private: EtcdServer,
) -> None:
    etcd = etcd_private
    etcd.put("/edgeward/services/pay/10.0.0.1:80", entry("10.0.0.1:80"))
    updates: list[Endpoints] = []
    # a slow fixed backoff leaves a window after the restart in which we write unseen
    backoff = Backoff(1.5, 1.5, random.Random(0))
    async with EtcdRegistryWatcher([etcd.endpoint], "pay", updates.append,
                                   backoff=backoff, timeout=1.0) as watcher:
        etcd.stop()
        await asyncio.sleep(0.3)
        assert watcher.endpoints == [("10.0.0.1", 80, 1)]  # still served
        etcd.start()
        # two writes while the watcher is still waiting to reconnect: a transient instance
        # that comes and goes, and one that stays
        etcd.put("/edgeward/services/pay/10.0.0.2:80", entry("10.0.0.2:80"))
        etcd.etcdctl("del", "/edgeward/services/pay/10.0.0.2:80")
        etcd.put("/edgeward/services/pay/10.0.0.3:80", entry("10.0.0.3:80", 5))
        assert len(updates) == 1
        await until(lambda: watcher.endpoints == [("10.0.0.1", 80, 1), ("10.0.0.3", 80, 5)],
                    timeout=8.0)
    # the three missed events arrive in one watch response and give one update
    assert updates == [[("10.0.0.1", 80, 1)], [("10.0.0.1", 80, 1), ("10.0.0.3", 80, 5)]]


async def test_watcher_rereads_when_its_revision_was_compacted(
    etcd_private: EtcdServer,
) -> None:
    server = etcd_private
    server.put("/edgeward/services/cmp/10.0.0.1:80", entry("10.0.0.1:80"))
    updates: list[Endpoints] = []
    backoff = Backoff(1.5, 1.5, random.Random(0))
    async with EtcdRegistryWatcher([server.endpoint], "cmp", updates.append,
                                   backoff=backoff, timeout=1.0) as watcher:
        server.stop()
        await asyncio.sleep(0.3)
        server.start()
        server.etcdctl("del", "/edgeward/services/cmp/10.0.0.1:80")
        server.put("/edgeward/services/cmp/10.0.0.2:80", entry("10.0.0.2:80"))
        rev = json.loads(server.etcdctl("get", "/", "-w", "json"))["header"]["revision"]
        server.etcdctl("compact", str(rev))
        await until(lambda: watcher.endpoints == [("10.0.0.2", 80, 1)], timeout=8.0)
        server.put("/edgeward/services/cmp/10.0.0.3:80", entry("10.0.0.3:80"))
        await until(lambda: len(watcher.endpoints) == 2)
    assert updates[-1] == [("10.0.0.2", 80, 1), ("10.0.0.3", 80, 1)]


def test_registry_weights_above_the_cap_are_clamped() -> None:
    value = b'{"address": "10.0.0.1:80", "weight": 1000000}'
    assert parse_registry_value(b"k", value) == ("10.0.0.1", 80, MAX_WEIGHT)
