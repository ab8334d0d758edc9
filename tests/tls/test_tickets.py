"""Session resumption across forked worker processes, as SO_REUSEPORT workers see it."""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.tls.certkit import Authority
from tests.tls.tlskit import connect, trusting

from edgeward.tls.certs import TlsError
from edgeward.tls.config import CertificateConfig, TlsListenerConfig
from edgeward.tls.store import CertificateStore
from edgeward.tls.tickets import (
    TICKET_KEY_BYTES,
    TicketKeys,
    TicketSchedule,
    install_ticket_key,
    new_secret,
    read_secret,
)

ROTATION = 3600


@pytest.fixture
def cfg(tmp_path: Path, inter: Authority) -> TlsListenerConfig:
    cert, key = inter.issue(["a.test"]).write(tmp_path / "a")
    return TlsListenerConfig(certificates=[CertificateConfig(cert=str(cert), key=str(key))])


def worker(make_front: Callable[[], ssl.SSLContext]) -> tuple[int, int]:
    """Fork a process that serves one TLS connection on its own port; (pid, port)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            front = make_front()
            raw, _ = listener.accept()
            raw.settimeout(5)
            with front.wrap_socket(raw, server_side=True) as conn:
                conn.sendall(b"ok")
                conn.recv(1)
            code = 0
        finally:
            os._exit(code)
    listener.close()
    return pid, port


def resumed_across(first: Callable[[], ssl.SSLContext], second: Callable[[], ssl.SSLContext],
                   root: Authority, version: ssl.TLSVersion) -> bool:
    """Full handshake at one worker, then resume at the other: was the session reused?"""
    (pid_a, port_a), (pid_b, port_b) = worker(first), worker(second)
    client = trusting(root.pem)
    client.maximum_version = version
    try:
        one = connect(port_a, client, "a.test")
        assert not one.reused
        two = connect(port_b, client, "a.test", session=one.session)
        return two.reused
    finally:
        for pid in (pid_a, pid_b):
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0


def own_store(cfg: TlsListenerConfig, keys: TicketKeys | None, at: float) -> ssl.SSLContext:
    """What a worker that builds its store after fork serves (OpenSSL picks a random key)."""
    front = CertificateStore.open(cfg, "t", time.time()).front
    if keys is not None:
        assert keys.apply(front, at) is not None, keys.unsupported
    return front


VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


@pytest.mark.parametrize("version", VERSIONS)
def test_shared_secret_resumes_across_workers(cfg: TlsListenerConfig, root: Authority,
                                              version: ssl.TLSVersion) -> None:
    keys = TicketKeys(TicketSchedule(new_secret(), ROTATION))
    now = time.time()
    assert resumed_across(lambda: own_store(cfg, keys, now), lambda: own_store(cfg, keys, now),
                          root, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_without_shared_keys_workers_cannot_resume(cfg: TlsListenerConfig, root: Authority,
                                                   version: ssl.TLSVersion) -> None:
    assert not resumed_across(lambda: own_store(cfg, None, 0), lambda: own_store(cfg, None, 0),
                              root, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_context_made_before_fork_shares_its_key(cfg: TlsListenerConfig, root: Authority,
                                                 version: ssl.TLSVersion) -> None:
    front = CertificateStore.open(cfg, "t", time.time()).front
    assert resumed_across(lambda: front, lambda: front, root, version)


def test_rotation_ends_resumption_of_older_tickets(cfg: TlsListenerConfig,
                                                   root: Authority) -> None:
    keys = TicketKeys(TicketSchedule(new_secret(), ROTATION))
    now = time.time()
    assert not resumed_across(lambda: own_store(cfg, keys, now),
                              lambda: own_store(cfg, keys, now + ROTATION), root,
                              ssl.TLSVersion.TLSv1_3)


def test_apply_says_when_to_rotate(cfg: TlsListenerConfig) -> None:
    keys = TicketKeys(TicketSchedule(new_secret(), ROTATION))
    front = CertificateStore.open(cfg, "t", time.time()).front
    assert keys.apply(front, 7200.5) == 3 * ROTATION
    with pytest.raises(ValueError):
        install_ticket_key(front, b"short")


@given(st.binary(min_size=32, max_size=64), st.floats(0, 4e9), st.integers(60, 86400 * 7))
def test_schedule_changes_key_exactly_at_rotation(secret: bytes, now: float,
                                                  rotation: int) -> None:
    schedule = TicketSchedule(secret, rotation)
    boundary = schedule.next_rotation(now)
    assert now < boundary <= now + rotation
    key = schedule.key(now)
    assert len(key) == TICKET_KEY_BYTES
    assert TicketSchedule(bytes(secret), rotation).key(now) == key          # same everywhere
    assert schedule.key(boundary) != key
    assert schedule.key(boundary - rotation) == key
    assert schedule.key(boundary - 0.001) == key
    assert TicketSchedule(secret + b"x", rotation).key(now) != key


def test_secret_file_errors(tmp_path: Path) -> None:
    (tmp_path / "short").write_bytes(b"x" * 10)
    with pytest.raises(TlsError, match=r"t\.session_ticket_key_file: .*holds 10 bytes"):
        read_secret(str(tmp_path / "short"), "t.session_ticket_key_file")
    with pytest.raises(TlsError, match="cannot read"):
        read_secret(str(tmp_path / "none"), "t.session_ticket_key_file")
    (tmp_path / "ok").write_bytes(os.urandom(48))
    assert len(read_secret(str(tmp_path / "ok"), "k")) == 48


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_the_hook_works_on_mtls_listeners(tmp_path: Path, inter: Authority, root: Authority,
                                          mode: str) -> None:
    """A front that asks for client certificates (verify_mode not CERT_NONE) takes the key."""
    cert, key = inter.issue(["a.test"]).write(tmp_path / "a")
    (tmp_path / "clients.pem").write_bytes(root.pem)
    cfg = TlsListenerConfig(certificates=[CertificateConfig(cert=str(cert), key=str(key))],
                            client_ca=str(tmp_path / "clients.pem"),
                            client_auth=mode)  # type: ignore[arg-type]
    keys = TicketKeys(TicketSchedule(new_secret(), ROTATION))
    front = CertificateStore.open(cfg, "t", time.time()).front
    assert front.verify_mode != ssl.CERT_NONE
    assert keys.apply(front, time.time()) is not None, keys.unsupported
