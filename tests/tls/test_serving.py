"""TlsServing: a TLS listener's store opened with every problem at once, reloads reported,
ticket keys installed and rotated on schedule."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from tests.tls.certkit import Authority, key_pem, new_key
from tests.tls.test_store import replace

from edgeward.tls.certs import TlsError
from edgeward.tls.config import CertificateConfig, TlsListenerConfig
from edgeward.tls.serving import TlsServing
from edgeward.tls.store import Reloaded

P = "listeners[0].tls"
SECRET = b"s" * 48


def config(tmp_path: Path, inter: Authority, **settings: object) -> TlsListenerConfig:
    cert, key = inter.issue(["a.test"]).write(tmp_path / "a")
    return TlsListenerConfig(certificates=[CertificateConfig(cert=str(cert), key=str(key))],
                             **settings)  # type: ignore[arg-type]


def test_every_problem_is_reported_at_once(tmp_path: Path, inter: Authority) -> None:
    (tmp_path / "short").write_bytes(b"x" * 16)
    cfg = TlsListenerConfig(certificates=[CertificateConfig(cert=str(tmp_path / "none.pem"),
                                                            key=str(tmp_path / "none.key"))],
                            session_ticket_key_file=str(tmp_path / "short"))
    with pytest.raises(TlsError) as info:
        TlsServing.open(cfg, P, SECRET, time.time())
    paths = [p.path for p in info.value.problems]
    assert f"{P}.certificates[0].cert" in paths
    assert f"{P}.session_ticket_key_file" in paths


def test_ticket_key_installed_and_next_rotation_given(tmp_path: Path, inter: Authority) -> None:
    serving = TlsServing.open(config(tmp_path, inter, session_ticket_rotation=3600.0), P,
                              SECRET, time.time())
    assert serving.tickets is not None and serving.tickets.unsupported is None
    assert serving.rotate(7200.5) == 10800.0


def test_no_tickets_no_rotation(tmp_path: Path, inter: Authority) -> None:
    serving = TlsServing.open(config(tmp_path, inter, session_tickets=False), P, SECRET,
                              time.time())
    assert serving.tickets is None and serving.rotate(time.time()) is None


def test_a_refused_reload_is_reported_and_logged(tmp_path: Path, inter: Authority,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    serving = TlsServing.open(config(tmp_path, inter), P, SECRET, time.time())
    serving.store.watch.settle = 0.0
    seen: list[Reloaded] = []
    serving.on_reload = seen.append
    replace(tmp_path / "a.key", key_pem(new_key()))
    results = serving.poll(time.time())
    assert seen == results and len(results) == 1 and not results[0].ok
    assert "does not match the certificate" in results[0].problems[0].reason


def test_start_and_close_run_the_watch(tmp_path: Path, inter: Authority) -> None:
    async def main() -> int:
        serving = TlsServing.open(config(tmp_path, inter, watch_interval=0.01), P, SECRET,
                                  time.time())
        serving.store.watch.settle = 0.0
        seen: list[Reloaded] = []
        serving.on_reload = seen.append
        serving.start(asyncio.get_running_loop())
        fresh = inter.issue(["a.test", "b.test"])
        replace(tmp_path / "a.key", fresh.key_pem)
        replace(tmp_path / "a.pem", fresh.chain_pem)
        while not any(r.ok for r in seen):
            await asyncio.sleep(0.01)
        await serving.close()
        return len(serving.tasks)

    assert asyncio.run(main()) == 0
