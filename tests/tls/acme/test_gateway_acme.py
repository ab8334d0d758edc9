"""ACME through a running gateway against a real pebble: the plain listener answers HTTP-01,
the TLS listener answers TLS-ALPN-01, and the obtained certificate is then served."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.tls.acme.pebblekit import Pebble, ensure_pebble

from support.gateway import GatewayProcess
from support.https import fetch, names

_skip = ensure_pebble()
pytestmark = pytest.mark.skipif(_skip is not None, reason=_skip or "")

WAIT = 60.0  # longest wait for an order (pebble validates in about a second)

CONFIG = """
listen: 127.0.0.1:{http}
listeners:
  - address: 127.0.0.1:{tls}
    tls:
      acme: {{directory: "{directory}", ca_bundle: {ca}, storage: {storage},
              domains: [{domain}], challenges: [{challenge}], retry_base: 1s}}
routes:
  - {{match: {{path_prefix: /}}, respond: {{status: 200, body: ok}}}}
"""


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    ca = Pebble(tmp_path_factory.mktemp("pebble")).start()
    try:
        yield ca
    finally:
        ca.stop()


@pytest.mark.parametrize(("challenge", "domain"), [("http-01", "plain.acme.test"),
                                                   ("tls-alpn-01", "alpn.acme.test")])
def test_the_gateway_obtains_and_serves_its_certificate(pebble: Pebble, tmp_path: Path,
                                                        challenge: str, domain: str) -> None:
    text = CONFIG.format(http=pebble.http_port, tls=pebble.tls_port, directory=pebble.directory,
                         ca=pebble.ca_file, storage=tmp_path / "acme", domain=domain,
                         challenge=challenge)
    ctx = ssl.create_default_context(cadata=pebble.root_pem().decode())
    gw = GatewayProcess.config(text)
    gw.port = pebble.http_port  # started once its plain listener (pebble's HTTP-01 port) is up
    with gw:
        deadline = time.monotonic() + WAIT
        served: list[str] = []
        while time.monotonic() < deadline and served != [domain]:
            try:
                served = names(fetch(pebble.tls_port, "/", server_name=domain, ctx=ctx).cert)
            except (OSError, ssl.SSLError):
                time.sleep(0.2)
        assert served == [domain], gw.stderr_text()[-2000:] + pebble.log()[-2000:]
    assert (tmp_path / "acme" / "certificates" / domain / "cert.pem").exists()
