from __future__ import annotations

import pytest

from edgeward.structs import ConfigError, load_struct
from edgeward.tls import config as c
from edgeward.tls.config import AcmeConfig, TlsListenerConfig, UpstreamTlsConfig


def test_listener_defaults_are_pinned() -> None:
    cfg = load_struct(TlsListenerConfig, {"certificates": [{"cert": "a.pem", "key": "a.key"}]})
    assert cfg.min_version == "1.2"
    assert cfg.ciphers == c.MOZILLA_INTERMEDIATE_CIPHERS
    assert cfg.ciphers.startswith("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")
    assert cfg.alpn == ["h2", "http/1.1"]
    assert (cfg.client_ca, cfg.client_auth, cfg.acme) == (None, "none", None)
    assert cfg.session_tickets is True and cfg.session_ticket_key_file is None
    assert cfg.session_ticket_rotation == 12 * 3600.0
    assert cfg.watch_interval == 1.0


def test_acme_and_upstream_defaults_are_pinned() -> None:
    acme = load_struct(AcmeConfig, {"domains": ["example.com"]})
    assert acme.directory == "https://acme-v02.api.letsencrypt.org/directory"
    assert acme.challenges == ["http-01", "tls-alpn-01"]
    assert acme.storage == "/var/lib/edgeward/acme"
    assert (acme.key_type, acme.lock, acme.lock_ttl) == ("ecdsa-p256", "file", 600.0)
    assert acme.renew_at == pytest.approx(2 / 3)
    assert (acme.retry_base, acme.retry_max) == (60.0, 6 * 3600.0)
    up = load_struct(UpstreamTlsConfig, {})
    assert (up.ca, up.server_name, up.client_cert, up.client_key) == (None, None, None, None)
    assert (up.verify, up.min_version, up.alpn) == (True, "1.2", ["http/1.1"])


@pytest.mark.parametrize(("raw", "where"), [
    ({}, "t.certificates: list at least one certificate, or set acme"),
    ({"certificates": [{"cert": "a"}]}, "t.certificates[0].key: set exactly one"),
    ({"certificates": [{"cert": "a", "cert_pem": "x", "key": "k"}]},
     "t.certificates[0].cert: set exactly one"),
    ({"certificates": [{"cert": "a", "key": "k"}], "min_version": "1.1"}, "t.min_version"),
    ({"certificates": [{"cert": "a", "key": "k"}], "alpn": []},
     "t.alpn: list at least one protocol"),
    ({"certificates": [{"cert": "a", "key": "k"}], "alpn": ["h2", "h2"]},
     "t.alpn: lists a protocol twice"),
    ({"certificates": [{"cert": "a", "key": "k"}], "alpn": ["spdy"]}, "t.alpn[0]: must be one"),
    ({"certificates": [{"cert": "a", "key": "k"}], "client_auth": "required"},
     "t.client_ca: required with client_auth: required"),
    ({"certificates": [{"cert": "a", "key": "k"}], "client_ca": "ca.pem"},
     "t.client_auth: client_ca is set but client_auth is none"),
    ({"certificates": [{"cert": "a", "key": "k"}], "session_ticket_rotation": "10s"},
     "t.session_ticket_rotation"),
    ({"acme": {"domains": []}}, "t.acme.domains: list at least one"),
    ({"acme": {"domains": ["*.example.com"]}}, "t.acme.domains[0]: wildcards need the DNS-01"),
    ({"acme": {"domains": ["Example.com"]}}, "t.acme.domains[0]: must be a lower-case"),
    ({"acme": {"domains": ["a..b"]}}, "t.acme.domains[0]: not a valid DNS name"),
    ({"acme": {"domains": ["a.b"], "directory": "http://x/dir"}}, "t.acme.directory"),
    ({"acme": {"domains": ["a.b"], "renew_at": 1.5}}, "t.acme.renew_at"),
    ({"acme": {"domains": ["a.b"], "retry_base": "1h", "retry_max": "1m"}}, "t.acme.retry_max"),
    ({"acme": {"domains": ["a.b"], "challenges": ["dns-01"]}}, "t.acme.challenges[0]"),
])
def test_listener_errors_name_the_key(raw: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_struct(TlsListenerConfig, raw, path="t")
    assert where in str(err.value)


@pytest.mark.parametrize(("raw", "where"), [
    ({"client_cert": "c.pem"}, "u.client_key: client_cert and client_key go together"),
    ({"client_key": "c.key"}, "u.client_cert: client_cert and client_key go together"),
    ({"verify": False, "ca": "ca.pem"}, "u.verify: ca is set but verify is false"),
    ({"server_name": " "}, "u.server_name: must not be empty"),
])
def test_upstream_errors_name_the_key(raw: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_struct(UpstreamTlsConfig, raw, path="u")
    assert where in str(err.value)


def test_acme_only_listener_is_valid() -> None:
    cfg = load_struct(TlsListenerConfig, {"acme": {"domains": ["example.com"],
                                                   "email": "ops@example.com"}})
    assert cfg.acme is not None and cfg.acme.domains == ["example.com"]
