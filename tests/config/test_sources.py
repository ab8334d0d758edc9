from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fixtures_etcd import (  # noqa: F401 - fixtures
    EtcdServer,
    etcd_fixture,
    etcd_private_fixture,
    free_port,
)

from edgeward.config.sources import (
    DEFAULT_POLL_INTERVAL,
    ConfigKeyMissing,
    EtcdSource,
    EtcdUnavailable,
    FileSource,
    open_source,
    parse_etcd_url,
)
from edgeward.discovery.etcd import Backoff

FAST = 0.05  # poll interval for file tests


async def until(pred: Callable[[], bool], timeout: float = 1.0) -> float:
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


# --- open_source / URL parsing ------------------------------------------------------------


def test_open_source_parses_etcd_urls_and_file_paths() -> None:
    src = open_source("etcd://127.0.0.1:2379/edgeward/config")
    assert isinstance(src, EtcdSource)
    assert src.key == "/edgeward/config"
    assert src.label == "etcd://127.0.0.1:2379/edgeward/config"
    assert parse_etcd_url("etcd://a:1,b:2/x/y") == ([("a", 1), ("b", 2)], "/x/y")
    f = open_source("conf/edgeward.yaml")
    assert isinstance(f, FileSource) and f.path == "conf/edgeward.yaml"
    assert f.interval == DEFAULT_POLL_INTERVAL == 1.0


@pytest.mark.parametrize("bad", ["etcd://127.0.0.1:2379", "etcd://127.0.0.1:2379/",
                                 "etcd://nohost/k", "etcd://a:99999/k", "etcd:///k"])
def test_bad_etcd_urls_are_refused_with_the_url(bad: str) -> None:
    with pytest.raises(ValueError) as err:
        open_source(bad)
    assert repr(bad) in str(err.value)


hosts = st.from_regex(r"[a-z][a-z0-9.-]{0,15}", fullmatch=True)
ports = st.integers(1, 65535)
keys = st.lists(st.from_regex(r"[A-Za-z0-9_.-]{1,10}", fullmatch=True), min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(endpoints=st.lists(st.tuples(hosts, ports), min_size=1, max_size=4), parts=keys)
def test_etcd_url_round_trips(endpoints: list[tuple[str, int]], parts: list[str]) -> None:
    key = "/" + "/".join(parts)
    url = "etcd://" + ",".join(f"{h}:{p}" for h, p in endpoints) + key
    assert parse_etcd_url(url) == (endpoints, key)


# --- FileSource -------------------------------------------------------------------------------


async def test_file_source_loads_and_delivers_an_edit(tmp_path: Path) -> None:
    path = tmp_path / "edgeward.yaml"
    path.write_text("listen: 0.0.0.0:8080\n")
    changes: list[str] = []
    async with FileSource(path, interval=FAST) as src:
        assert await src.load() == ("listen: 0.0.0.0:8080\n", str(path))
        src.watch(changes.append)
        await asyncio.sleep(3 * FAST)
        assert changes == []  # the loaded content is the baseline
        path.write_text("listen: 0.0.0.0:9090\n")
        await until(lambda: changes == ["listen: 0.0.0.0:9090\n"])


async def test_file_source_ignores_touch_and_rewrite_with_same_content(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\n")
    changes: list[str] = []
    async with FileSource(path, interval=FAST) as src:
        await src.load()
        src.watch(changes.append)
        os.utime(path, (time.time() + 5, time.time() + 5))
        path.write_text("a: 1\n")
        await asyncio.sleep(6 * FAST)
        assert changes == []
        path.write_text("a: 2\n")
        await until(lambda: changes == ["a: 2\n"])


async def test_file_source_sees_same_size_edit_with_unchanged_mtime(tmp_path: Path) -> None:
    # a coarse-timestamp filesystem: the edit keeps size and mtime; only the hash tells
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\n")
    st0 = path.stat()
    changes: list[str] = []
    async with FileSource(path, interval=FAST) as src:
        await src.load()
        src.watch(changes.append)
        await asyncio.sleep(2 * FAST)
        path.write_text("a: 2\n")
        os.utime(path, ns=(st0.st_atime_ns, st0.st_mtime_ns))
        await until(lambda: changes == ["a: 2\n"])


async def test_file_source_sees_configmap_symlink_swap(tmp_path: Path) -> None:
    # the layout kubelet projects: config.yaml -> ..data/config.yaml, ..data -> ..<timestamp>
    mount = tmp_path / "cfg"
    mount.mkdir()
    v1 = mount / "..2026_01_01_00_00_00.1"
    v1.mkdir()
    (v1 / "config.yaml").write_text("version: 1\n")
    os.symlink(v1.name, mount / "..data")
    os.symlink("..data/config.yaml", mount / "config.yaml")
    changes: list[str] = []
    async with FileSource(mount / "config.yaml", interval=FAST) as src:
        assert (await src.load())[0] == "version: 1\n"
        src.watch(changes.append)
        # kubelet: write new dir, make a temp symlink, rename it over ..data, delete old dir
        v2 = mount / "..2026_01_01_00_01_00.2"
        v2.mkdir()
        (v2 / "config.yaml").write_text("version: 2\n")
        os.symlink(v2.name, mount / "..data_tmp")
        os.rename(mount / "..data_tmp", mount / "..data")
        (v1 / "config.yaml").unlink()
        v1.rmdir()
        took = await until(lambda: changes == ["version: 2\n"])
        assert took < 1.0


async def test_file_source_keeps_config_while_file_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\n")
    changes: list[str] = []
    async with FileSource(path, interval=FAST) as src:
        await src.load()
        src.watch(changes.append)
        path.unlink()
        await asyncio.sleep(4 * FAST)
        assert changes == []
        path.write_text("a: 1\n")  # back with the same content: nothing to reload
        await asyncio.sleep(4 * FAST)
        assert changes == []
        path.write_text("a: 3\n")
        await until(lambda: changes == ["a: 3\n"])


async def test_file_source_survives_a_failing_handler(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\n")
    seen: list[str] = []

    def handler(text: str) -> None:
        seen.append(text)
        raise RuntimeError("bad config")

    async with FileSource(path, interval=FAST) as src:
        await src.load()
        src.watch(handler)
        path.write_text("a: 2\n")
        await until(lambda: seen == ["a: 2\n"])
        path.write_text("a: 33\n")
        await until(lambda: seen == ["a: 2\n", "a: 33\n"])


async def test_file_source_missing_at_load_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await FileSource(tmp_path / "nope.yaml").load()


# --- EtcdSource -------------------------------------------------------------------------------


async def test_etcd_source_loads_and_delivers_a_change_within_a_second(etcd: EtcdServer) -> None:
    etcd.put("/edgeward/config", "listen: 0.0.0.0:8080\n")
    changes: list[str] = []
    async with open_source(f"etcd://{etcd.url}/edgeward/config") as src:
        assert await src.load() == ("listen: 0.0.0.0:8080\n",
                                    f"etcd://{etcd.url}/edgeward/config")
        src.watch(changes.append)
        await asyncio.sleep(0.2)
        etcd.put("/edgeward/config", "listen: 0.0.0.0:8080\n")  # same value: no reload
        etcd.put("/edgeward/config", "listen: 0.0.0.0:9090\n")
        took = await until(lambda: changes == ["listen: 0.0.0.0:9090\n"])
        assert took < 1.0
        etcd.etcdctl("del", "/edgeward/config")  # deleted: keep serving, nothing delivered
        await asyncio.sleep(0.2)
        assert changes == ["listen: 0.0.0.0:9090\n"]
        etcd.put("/edgeward/config", "listen: 0.0.0.0:7070\n")
        await until(lambda: changes[-1] == "listen: 0.0.0.0:7070\n")


async def test_etcd_source_unreachable_at_start_is_a_clear_connection_error() -> None:
    port = free_port()
    src = EtcdSource([("127.0.0.1", port)], "/edgeward/config", timeout=1.0)
    with pytest.raises(ConnectionError) as err:
        await src.load()
    assert isinstance(err.value, EtcdUnavailable)
    assert f"127.0.0.1:{port}" in str(err.value)
    await src.close()


async def test_etcd_source_tries_the_next_endpoint(etcd: EtcdServer) -> None:
    etcd.put("/edgeward/multi", "a: 1\n")
    dead = ("127.0.0.1", free_port())
    async with EtcdSource([dead, etcd.endpoint], "/edgeward/multi", timeout=1.0) as src:
        assert (await src.load())[0] == "a: 1\n"


async def test_etcd_source_missing_key_names_it(etcd: EtcdServer) -> None:
    async with EtcdSource([etcd.endpoint], "/edgeward/absent") as src:
        with pytest.raises(ConfigKeyMissing, match="/edgeward/absent"):
            await src.load()


async def test_etcd_source_resumes_after_restart_without_missing_a_write(
    etcd_private: EtcdServer,
) -> None:
    server = etcd_private
    server.put("/edgeward/config", "v: 1\n")
    changes: list[str] = []
    backoff = Backoff(1.5, 1.5, random.Random(0))  # leaves a window to write unseen
    async with EtcdSource([server.endpoint], "/edgeward/config", timeout=1.0,
                          backoff=backoff) as src:
        await src.load()
        src.watch(changes.append)
        await asyncio.sleep(0.2)
        server.stop()
        await asyncio.sleep(0.3)
        server.start()
        server.put("/edgeward/config", "v: 2\n")
        server.put("/edgeward/config", "v: 3\n")
        assert changes == []  # not reconnected yet
        await until(lambda: changes == ["v: 3\n"], timeout=8.0)
        server.put("/edgeward/config", "v: 4\n")
        await until(lambda: changes == ["v: 3\n", "v: 4\n"])


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600])
async def test_store_keeps_the_files_mode(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "edgeward.yaml"
    path.write_text("routes: []\n")
    os.chmod(path, mode)
    await FileSource(path).store("routes: [] # new\n")
    assert path.read_text() == "routes: [] # new\n"
    assert os.stat(path).st_mode & 0o777 == mode
    assert [p.name for p in tmp_path.iterdir()] == ["edgeward.yaml"]
