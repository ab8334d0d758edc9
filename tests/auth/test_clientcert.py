"""The `client_cert` method's lookup over a consumer index (no sockets: certificates as the
TLS listener describes them), and its config refused with key paths."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from edgeward.auth.clientcert import ClientCertMethod
from edgeward.auth.config import ClientCertConfig, ConsumerConfig
from edgeward.auth.consumer import Consumer
from edgeward.auth.context import AuthContext
from edgeward.auth.directory import ConsumerDirectory
from edgeward.auth.etcd import parse_consumer
from edgeward.auth.method import Failure
from edgeward.config.text import load_text
from edgeward.http.message import ClientCert
from edgeward.proxy.subrequest import make_head
from edgeward.structs import ConfigError, load_struct

FP = "ab" * 32
SPIFFE = "spiffe://example.org/ns/prod/sa/billing"


def cert(cn: str = "", *, sha: str = "00" * 32, dns: tuple[str, ...] = (),
         uris: tuple[str, ...] = (), emails: tuple[str, ...] = ()) -> ClientCert:
    return ClientCert(f"CN={cn}", dns, uris, emails, sha, b"", cn)


def directory(consumers: dict[str, Any]) -> ConsumerDirectory:
    d = ConsumerDirectory()
    configs = {n: load_struct(ConsumerConfig, c) for n, c in consumers.items()}
    resolved, problems = d.prepare(configs, {})
    assert problems == []
    d.install_static(resolved)
    return d


CONSUMERS = {
    "alice": {"client_certs": [":".join(FP[i:i + 2].upper() for i in range(0, 64, 2))]},
    "billing": {"client_certs": [f"uri:{SPIFFE}"]},
    "gateway-b": {"client_certs": ["dns:GW-B.Example."]},
    "ops": {"client_certs": ["email:Ops@Example.org"]},
    "thermo-17": {"client_certs": ["cn:thermo-17"]},
    "bob": {"api_keys": ["k"]},
}


def method(match: list[str] | None = None, by_cn: bool = False,
           consumers: dict[str, Any] = CONSUMERS) -> ClientCertMethod:
    raw: dict[str, Any] = {"consumer_by_cn": by_cn}
    if match is not None:
        raw["match"] = match
    cfg = load_struct(ClientCertConfig, raw)
    return ClientCertMethod(cfg, AuthContext(consumers=directory(consumers)), "r")


def name_of(m: ClientCertMethod, c: ClientCert | None) -> str | None | Failure:
    req = make_head("GET", "/", "h", [])
    req.client_cert = c
    found = m.authenticate(req, 0.0)
    assert found is None or isinstance(found, Consumer | Failure)
    return found.name if isinstance(found, Consumer) else found


def test_each_identity_kind_names_its_consumer() -> None:
    m = method()
    assert name_of(m, cert("x", sha=FP)) == "alice"
    assert name_of(m, cert("x", uris=("spiffe://other/a", SPIFFE))) == "billing"
    assert name_of(m, cert("x", dns=("gw-b.example",))) == "gateway-b"
    assert name_of(m, cert("x", emails=("Ops@EXAMPLE.org",))) == "ops"
    assert name_of(m, cert("thermo-17")) == "thermo-17"


def test_no_certificate_passes_and_an_unknown_one_is_403() -> None:
    m = method()
    assert name_of(m, None) is None
    refused = name_of(m, cert("bob", sha="cd" * 32))
    assert isinstance(refused, Failure)
    assert (refused.status, refused.code) == (403, "unknown_client_certificate")
    assert "cd" * 32 in refused.detail


def test_match_limits_the_kinds_and_orders_them() -> None:
    both = cert("thermo-17", sha=FP)        # alice's fingerprint, thermo-17's CN
    assert name_of(method(), both) == "alice"
    assert name_of(method(["cn", "fingerprint"]), both) == "thermo-17"
    only_fp = method(["fingerprint"])
    assert isinstance(name_of(only_fp, cert("thermo-17")), Failure)
    assert isinstance(name_of(only_fp, cert("x", uris=(SPIFFE,))), Failure)


def test_consumer_by_cn_matches_a_name_without_listing() -> None:
    assert isinstance(name_of(method(), cert("bob")), Failure)
    assert name_of(method(by_cn=True), cert("bob")) == "bob"
    assert isinstance(name_of(method(by_cn=True), cert("")), Failure)  # no (or two) CNs


def test_a_certificate_listed_twice_keeps_the_first(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "edgeward.auth"):
        m = method(consumers={"a": {"client_certs": ["cn:x"]}, "b": {"client_certs": ["cn:x"]}})
    assert name_of(m, cert("x")) == "a"
    assert "consumers a and b both list client certificate cn:x" in caplog.text


def test_etcd_consumers_read_client_certs() -> None:
    d = ConsumerDirectory()
    entry = parse_consumer(b"/c/thermo-18", b"{client_certs: ['cn:thermo-18']}", b"/c/")
    assert entry is not None
    d.set_dynamic([entry], {})
    assert d.index.by_cert["cn"]["thermo-18"].name == "thermo-18"
    assert parse_consumer(b"/c/x", b"{client_certs: ['ip:1.2.3.4']}", b"/c/") is None


def refused(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_text(text, "f.yaml")
    return err.value.lines()


MTLS = """
listen: 127.0.0.1:1
listeners:
  - address: 127.0.0.1:2
    tls: {certificates: [{cert: /c.pem, key: /c.key}], client_ca: /ca.pem,
          client_auth: optional}
"""


def test_bad_entries_and_match_are_refused_with_key_paths() -> None:
    lines = refused(MTLS + 'consumers: {a: {client_certs: ["sha256:12", "spiffe://x"]}}\n')
    assert any(ln.startswith("f.yaml: consumers.a.client_certs[0]: a fingerprint is the SHA-256")
               for ln in lines)
    assert any(ln.startswith("f.yaml: consumers.a.client_certs[1]: expected a SHA-256")
               for ln in lines)
    lines = refused(MTLS + """
routes:
  - match: {path_prefix: /}
    respond: {status: 204}
    filters: [{client_cert: {match: [fingerprint, ip, fingerprint]}}]
""")
    assert "f.yaml: routes[0].filters[0].client_cert.match[1]: unknown 'ip' (known: " \
           "fingerprint, uri, dns, email, cn)" in lines
    assert "f.yaml: routes[0].filters[0].client_cert.match[2]: fingerprint is listed twice" \
           in lines


def test_a_client_cert_method_without_an_mtls_listener_is_refused() -> None:
    routes = """
filters:
  devices-auth: {auth: {methods: [{api_key: {}}, {client_cert: {}}]}}
routes:
  - match: {path_prefix: /a}
    respond: {status: 204}
    filters: [{client_cert: {}}]
  - match: {path_prefix: /b}
    respond: {status: 204}
    filters: [devices-auth]
"""
    lines = refused("listen: 127.0.0.1:1\n" + routes)
    reason = "no listener asks for client certificates"
    assert any(ln.startswith(f"f.yaml: routes[0].filters[0].client_cert: {reason}")
               for ln in lines)
    assert any(ln.startswith(f"f.yaml: filters.devices-auth.auth.methods[1].client_cert: "
                             f"{reason}") for ln in lines)
    assert len(lines) == 2
    load_text(MTLS + routes, "f.yaml")  # one mTLS listener serves every route


def test_defaults_are_pinned() -> None:
    cfg = load_struct(ClientCertConfig, {})
    assert cfg.match == ["fingerprint", "uri", "dns", "email", "cn"]
    assert cfg.consumer_by_cn is False
