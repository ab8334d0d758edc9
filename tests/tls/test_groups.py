"""The server offers Mozilla's key exchange groups only: X25519, P-256, P-384."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import pytest
from tests.tls.certkit import Authority, new_key
from tests.tls.tlskit import connect, tls_server, trusting

from edgeward.tls.config import CertificateConfig, TlsListenerConfig
from edgeward.tls.context import pair_context
from edgeward.tls.groups import MOZILLA_GROUPS, restrict_groups


def server(tmp_path: Path, inter: Authority) -> ssl.SSLContext:
    # An RSA key: with TLS 1.2 a client's groups also limit the curve of an ECDSA certificate.
    cert, key = inter.issue(["g.test"], key=new_key("rsa")).write(tmp_path / "g")
    cfg = TlsListenerConfig(certificates=[CertificateConfig(cert=str(cert), key=str(key))])
    return pair_context(cfg, cfg.certificates[0], "listeners[0].tls", time.time())[0]


def client(root: Authority, groups: str, version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = trusting(root.pem)
    ctx.minimum_version = ctx.maximum_version = version
    assert restrict_groups(ctx, groups) is None
    return ctx


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_only_mozillas_groups_are_accepted(tmp_path: Path, root: Authority, inter: Authority,
                                          version: ssl.TLSVersion) -> None:
    with tls_server(server(tmp_path, inter)) as srv:
        for group in MOZILLA_GROUPS.split(":"):
            assert connect(srv.port, client(root, group, version), "g.test").version
        for group in ("X448", "P-521"):
            if version == ssl.TLSVersion.TLSv1_3:
                with pytest.raises(ssl.SSLError):
                    connect(srv.port, client(root, group, version), "g.test")
            else:  # no common curve: TLS 1.2 falls back to the DHE suites (ffdhe2048)
                cipher = connect(srv.port, client(root, group, version), "g.test").cipher
                assert cipher is not None and cipher.startswith("DHE-RSA-"), cipher


def test_a_list_openssl_refuses_is_reported() -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert restrict_groups(ctx, "no-such-group") == "OpenSSL refused the group list " \
                                                    "'no-such-group'"
