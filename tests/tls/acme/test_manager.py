"""ACME end to end against a real pebble: obtain with HTTP-01 and TLS-ALPN-01, serve, renew,
back off after a failed validation, and step aside while another gateway holds the lock."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from tests.tls.acme.pebblekit import Pebble, ensure_pebble
from tests.tls.tlskit import connect, trusting

from edgeward.tls.acme.challenges import ChallengeResponder
from edgeward.tls.acme.lock import FileOrderLock
from edgeward.tls.acme.manager import LOCKED_RETRY, AcmeManager
from edgeward.tls.config import AcmeConfig, TlsListenerConfig
from edgeward.tls.store import CertificateStore

_skip = ensure_pebble()
pytestmark = pytest.mark.skipif(_skip is not None, reason=_skip or "")


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    ca = Pebble(tmp_path_factory.mktemp("pebble")).start()
    try:
        yield ca
    finally:
        ca.stop()


async def http01_server(port: int, responder: ChallengeResponder) -> asyncio.Server:
    """What the listener will do: answer /.well-known/acme-challenge/TOKEN from the responder."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode()
        answer = responder.http01_path_response(path)
        if answer is None:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                         + str(len(answer)).encode() + b"\r\n\r\n" + answer.encode())
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


@pytest.fixture
async def responder(pebble: Pebble) -> AsyncIterator[ChallengeResponder]:
    responder = ChallengeResponder()
    server = await http01_server(pebble.http_port, responder)
    try:
        yield responder
    finally:
        server.close()
        await server.wait_closed()


def acme_config(pebble: Pebble, tmp_path: Path, domains: list[str],
                challenges: list[str]) -> AcmeConfig:
    return AcmeConfig(directory=pebble.directory, email="ops@example.com", domains=domains,
                      challenges=challenges, storage=str(tmp_path / "acme"),  # type: ignore
                      ca_bundle=pebble.ca_file, retry_base=60.0)


def store_for(acme: AcmeConfig) -> CertificateStore:
    return CertificateStore.open(TlsListenerConfig(acme=acme), "t", time.time())


async def serve(store: CertificateStore, port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok")
        await writer.drain()
        await reader.read(1)
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port, ssl=store.front)


def assert_chains_to_pebble_root(pebble: Pebble, chain_pem: bytes, names: list[str]) -> None:
    chain = x509.load_pem_x509_certificates(chain_pem)
    root = x509.load_pem_x509_certificate(pebble.root_pem())
    for child, parent in zip(chain, [*chain[1:], root], strict=True):
        child.verify_directly_issued_by(parent)
    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sorted(san.value.get_values_for_type(x509.DNSName)) == sorted(names)


async def test_http01_obtains_stores_and_serves(pebble: Pebble, responder: ChallengeResponder,
                                                tmp_path: Path) -> None:
    domains = ["www.edgeward.test", "edgeward.test"]
    cfg = acme_config(pebble, tmp_path, domains, ["http-01"])
    store = store_for(cfg)
    manager = AcmeManager.create(cfg, responder=responder, store=store)
    now = time.time()
    wake = await manager.step(now)
    assert manager.last.what == "obtained", (manager.last, pebble.log())
    assert responder.open_challenges() == 0
    files = manager.storage.certificate_config("www.edgeward.test")
    assert files.cert and files.key
    assert_chains_to_pebble_root(pebble, Path(files.cert).read_bytes(), domains)
    account_key = f"{cfg.storage}/localhost_{pebble.acme_port}_dir/account.key"
    for path in (files.cert, files.key, account_key):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    served = manager.current
    assert served is not None
    lifetime = served.not_after - served.not_before
    assert wake == pytest.approx(served.not_before + lifetime * 2 / 3)
    # a real client that trusts only pebble's root verifies the served chain and name
    server = await serve(store, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = trusting(pebble.root_pem())
        hs = await asyncio.to_thread(connect, port, client, "edgeward.test")
        assert hs.cert.serial_number == served.leaf.serial_number
    finally:
        server.close()
        await server.wait_closed()
    # renewal: at the renewal time a new certificate replaces it, the account is reused
    account = manager.client.account_url
    await manager.step(wake + 1)
    assert manager.last.what == "renewed", manager.last
    assert manager.current is not None and manager.current is not served
    assert manager.current.leaf.serial_number != served.leaf.serial_number
    assert manager.client.account_url == account
    # a second gateway on the same storage finds the certificate instead of ordering
    other = AcmeManager.create(cfg, responder=ChallengeResponder())
    assert await other.step(time.time()) == pytest.approx(manager.decide(time.time())[0])
    assert other.current is not None
    assert other.current.leaf.serial_number == manager.current.leaf.serial_number


async def test_tls_alpn01_through_the_store(pebble: Pebble, tmp_path: Path) -> None:
    responder = ChallengeResponder()
    cfg = acme_config(pebble, tmp_path, ["alpn.edgeward.test"], ["tls-alpn-01"])
    store = store_for(cfg)
    store.challenge = responder.tls_alpn_context
    server = await serve(store, pebble.tls_port)
    try:
        manager = AcmeManager.create(cfg, responder=responder, store=store)
        await manager.step(time.time())
    finally:
        server.close()
        await server.wait_closed()
    assert manager.last.what == "obtained", (manager.last, pebble.log())
    assert manager.current is not None
    assert_chains_to_pebble_root(pebble, manager.current.chain_pem, ["alpn.edgeward.test"])
    assert responder.tls_alpn_context("alpn.edgeward.test") is None


async def test_failed_validation_backs_off_and_keeps_nothing(pebble: Pebble,
                                                             tmp_path: Path) -> None:
    responder = ChallengeResponder()     # no HTTP server answers on pebble's http port
    cfg = acme_config(pebble, tmp_path, ["down.edgeward.test"], ["http-01"])
    manager = AcmeManager.create(cfg, responder=responder)
    now = time.time()
    wake = await manager.step(now)
    assert manager.last.what == "failed" and manager.failures == 1
    assert "authorization for down.edgeward.test is invalid" in manager.last.detail
    assert wake >= now + 60.0
    assert manager.current is None and responder.open_challenges() == 0


async def test_held_lock_makes_the_gateway_wait(pebble: Pebble, tmp_path: Path) -> None:
    cfg = acme_config(pebble, tmp_path, ["locked.edgeward.test"], ["http-01"])
    manager = AcmeManager.create(cfg, responder=ChallengeResponder())
    other = FileOrderLock(f"{cfg.storage}/locks")
    lease = await other.acquire("locked.edgeward.test", 60)
    assert lease is not None
    now = time.time()
    try:
        assert await manager.step(now) == now + LOCKED_RETRY
        assert manager.last.what == "locked" and manager.failures == 0
    finally:
        await lease.release()
