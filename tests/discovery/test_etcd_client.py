"""etcd with TLS and auth, and a three-member etcd cluster losing the member the gateway
talks to; real etcd processes on 127.0.0.1, certificates made at test time."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures_etcd import (
    SECURE_PASSWORD,
    SECURE_USER,
    EtcdCluster,
    EtcdServer,
    EtcdTls,
    start_secure_etcd,
)

from edgeward.config.sources import EtcdSource
from edgeward.discovery.etcd import (
    EtcdConfig,
    EtcdConnection,
    EtcdPrefixWatcher,
    EtcdRegistryWatcher,
    EtcdUnavailable,
)
from edgeward.discovery.etcd_client import EtcdAccess, access_from_env
from edgeward.discovery.register import Registration
from edgeward.structs import ConfigError, load_struct
from edgeward.tls.config import StoreTlsConfig

USER, PASSWORD = SECURE_USER, SECURE_PASSWORD
# etcd's simple tokens expire after this many idle seconds (default 300): short, so one test
# sees a token expire.
TOKEN_TTL = 1


async def until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        await asyncio.sleep(0.01)


def put(member: EtcdServer, key: str, value: str) -> int:
    """Put through etcdctl; the revision of the put."""
    out = member.etcdctl("-w", "json", "put", key, input=value.encode())
    return int(json.loads(out)["header"]["revision"])


# -- config --------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "problem"), [
    ({"username": "gw"}, "password: username and password go together"),
    ({"password": "x"}, "username: username and password go together"),
    ({"tls": {"verify": False}}, "tls.verify: false is not supported for etcd"),
    ({"tls": {"ca": "/nonexistent/ca.pem"}}, "tls.ca: no such file: /nonexistent/ca.pem"),
])
def test_bad_etcd_security_is_refused_with_the_key(raw: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_struct(EtcdConfig, raw)
    assert any(problem in line for line in info.value.lines()), info.value.lines()


def test_the_password_is_never_in_a_repr() -> None:
    cfg = load_struct(EtcdConfig, {"username": USER, "password": PASSWORD})
    assert PASSWORD not in repr(cfg) and PASSWORD not in repr(cfg.access)


def test_the_environment_names_user_and_files(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    access = access_from_env({"EDGEWARD_ETCD_USER": f"{USER}:{PASSWORD}",
                              "EDGEWARD_ETCD_CACERT": str(ca)})
    assert (access.username, access.password) == (USER, PASSWORD)
    assert access.tls == StoreTlsConfig(ca=str(ca))
    with pytest.raises(ValueError, match="EDGEWARD_ETCD_USER must be NAME:PASSWORD"):
        access_from_env({"EDGEWARD_ETCD_USER": "gw"})
    with pytest.raises(ValueError, match="EDGEWARD_ETCD_KEY: client_cert and client_key"):
        access_from_env({"EDGEWARD_ETCD_CERT": str(ca)})


# -- TLS and auth --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def secure_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = start_secure_etcd(tmp_path_factory.mktemp("etcd-tls"), token_ttl=TOKEN_TTL)
    yield server
    server.stop()


def secure_access(tls: EtcdTls, password: str = PASSWORD, cert: bool = True) -> EtcdAccess:
    return EtcdAccess(USER, password, StoreTlsConfig(
        ca=str(tls.ca), client_cert=str(tls.client_cert) if cert else None,
        client_key=str(tls.client_key) if cert else None))


async def test_registry_over_tls_with_a_user(secure_etcd: EtcdServer) -> None:
    assert secure_etcd.tls is not None
    access = secure_access(secure_etcd.tls)
    seen: list[list[tuple[str, int, int]]] = []
    watcher = EtcdRegistryWatcher([secure_etcd.endpoint], "tls-svc", seen.append, access=access)
    async with watcher:
        async with Registration([secure_etcd.endpoint], "tls-svc", ("127.0.0.1", 9001),
                                ttl=5, access=access):
            await until(lambda: watcher.endpoints == [("127.0.0.1", 9001, 1)])
        await until(lambda: watcher.endpoints == [])
    assert secure_etcd.keys("/edgeward/services/tls-svc/") == []


async def test_an_expired_token_is_fetched_again(secure_etcd: EtcdServer) -> None:
    assert secure_etcd.tls is not None
    conn = EtcdConnection([secure_etcd.endpoint], 5.0, secure_access(secure_etcd.tls))
    put(secure_etcd, "/edgeward/token-test", "v1")
    try:
        first = await conn.call(lambda c: c.get(b"/edgeward/token-test"))
        client = await conn.client()
        assert first.value == b"v1" and client.authentications == 1
        # Nothing to await: the token expires on etcd's clock after TOKEN_TTL idle seconds.
        await asyncio.sleep(TOKEN_TTL + 1.5)
        again = await conn.call(lambda c: c.get(b"/edgeward/token-test"))
        assert again.value == b"v1"
        assert await conn.client() is client and client.authentications == 2
    finally:
        await conn.reset()


@pytest.mark.parametrize("case", ["wrong password", "no client certificate", "plain"])
async def test_refused_credentials_name_the_endpoint(secure_etcd: EtcdServer, case: str) -> None:
    assert secure_etcd.tls is not None
    access = {"wrong password": secure_access(secure_etcd.tls, password="nope"),
              "no client certificate": secure_access(secure_etcd.tls, cert=False),
              "plain": EtcdAccess(USER, PASSWORD)}[case]
    conn = EtcdConnection([secure_etcd.endpoint], 2.0, access)
    try:
        with pytest.raises(EtcdUnavailable, match=secure_etcd.url):
            await conn.call(lambda c: c.get(b"/edgeward/x"))
    finally:
        await conn.reset()


# -- a three-member cluster ------------------------------------------------------------------

@pytest.fixture(scope="module")
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd-cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


class Recorder(EtcdPrefixWatcher[str]):
    """Keeps every value, and the revision of every event it applied, in order."""

    applied: list[int]

    def parse(self, key: bytes, value: bytes) -> str | None:
        return value.decode()

    def _apply(self, event: Any) -> None:
        self.applied.append(event.kv.mod_revision)
        super()._apply(event)


async def test_watch_config_and_registry_survive_losing_their_member(
        etcd_cluster: EtcdCluster) -> None:
    m0, m1, _ = etcd_cluster.members
    endpoints = etcd_cluster.endpoints            # m0 first: everything talks to m0
    put(m1, "/edgeward/config", "version: 0")
    recorder = Recorder(endpoints, b"/edgeward/events/", lambda entries: None, timeout=2.0)
    recorder.applied = []
    configs: list[str] = []
    source = EtcdSource(endpoints, "/edgeward/config", timeout=2.0)
    registration = Registration(endpoints, "svc", ("127.0.0.1", 9100), ttl=2, timeout=2.0)
    await recorder.start()
    await source.load()
    source.watch(configs.append)
    await registration.start()
    try:
        assert recorder._conn.current == m0.endpoint
        written = [put(m1, f"/edgeward/events/{i}", f"v{i}") for i in range(3)]
        await until(lambda: len(recorder.applied) == 3)

        m0.stop()                                  # the member everyone talks to is gone
        written += [put(m1, f"/edgeward/events/{i}", f"v{i}") for i in range(3, 6)]
        put(m1, "/edgeward/config", "version: 1")
        await until(lambda: len(recorder.entries) == 6 and configs == ["version: 1"])
        # every event once, in order: nothing missed, nothing repeated across the resume
        assert recorder.applied == written
        assert recorder.entries == [f"v{i}" for i in range(6)]
        assert recorder._conn.current != m0.endpoint
        # the registration's lease (2 s) was kept alive through another member
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert m1.keys("/edgeward/services/svc/") == ["/edgeward/services/svc/127.0.0.1:9100"]
            await asyncio.sleep(0.5)
        assert registration.registrations == 1
    finally:
        await registration.close()
        await source.close()
        await recorder.close()
