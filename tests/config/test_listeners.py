"""`listeners:`, the `listen` shorthand beside them, and `https://` targets."""

from __future__ import annotations

import pytest

from edgeward.config.listeners import DEFAULT_LISTEN, ListenerConfig
from edgeward.config.text import load_text
from edgeward.structs import ConfigError

TLS = "{certificates: [{cert: /c.pem, key: /c.key}]}"


def refused(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, "gw.yaml")
    return info.value.lines()


def test_defaults_are_pinned() -> None:
    lc = ListenerConfig(address=("h", 1))
    assert (lc.tls, lc.https_redirect, lc.https_port, lc.hsts) == (None, False, None, None)
    assert DEFAULT_LISTEN == ("0.0.0.0", 8080)
    assert load_text("{}", "gw.yaml").served_listeners() == [
        ("listen", ListenerConfig(address=("0.0.0.0", 8080)))]


def test_listen_comes_first_then_listeners() -> None:
    cfg = load_text(f"""
listen: 127.0.0.1:80
listeners:
  - {{address: 127.0.0.1:443, tls: {TLS}, hsts: max-age=600}}
  - {{address: 127.0.0.1:8080, https_redirect: true, https_port: 443}}
""", "gw.yaml")
    served = cfg.served_listeners()
    assert [(p, lc.address[1]) for p, lc in served] == [
        ("listen", 80), ("listeners[0]", 443), ("listeners[1]", 8080)]
    assert served[1][1].tls is not None and served[1][1].hsts == "max-age=600"


def test_listener_problems_name_their_keys() -> None:
    lines = refused(f"""
listen: 127.0.0.1:443
listeners:
  - {{address: 127.0.0.1:443, tls: {TLS}, https_redirect: true}}
  - {{address: 127.0.0.1:80, hsts: max-age=1}}
  - {{address: 127.0.0.1:81, tls: {TLS}, hsts: "includeSubDomains"}}
  - {{address: 127.0.0.1:82, https_port: 8443}}
  - {{address: 127.0.0.1:83, tls: {{certificates: []}}}}
""")
    text = "\n".join(lines)
    assert "listeners[0].https_redirect: this listener already serves https" in text
    assert "listeners[1].hsts: browsers ignore Strict-Transport-Security" in text
    assert "listeners[2].hsts: must start with max-age=SECONDS" in text
    assert "listeners[3].https_port: only used with https_redirect: true" in text
    assert "listeners[4].tls.certificates: list at least one certificate, or set acme" in text


def test_two_listeners_on_one_address_are_refused() -> None:
    lines = refused(f"""
listen: 127.0.0.1:443
listeners: [{{address: 127.0.0.1:443, tls: {TLS}}}]
""")
    assert "gw.yaml: listeners[0].address: 127.0.0.1:443 is also listen" in lines


def test_https_targets_turn_tls_on() -> None:
    cfg = load_text("""
upstreams:
  a: {targets: ["https://a.internal", "https://b.internal:8443/"]}
  b: {targets: ["https://c.internal"], tls: {server_name: c.example}}
  c: {targets: ["http://d.internal"]}
""", "gw.yaml")
    a, b, c = cfg.upstreams["a"], cfg.upstreams["b"], cfg.upstreams["c"]
    assert a.targets == [("a.internal", 443), ("b.internal", 8443)]
    assert a.tls is not None and a.tls.verify and a.tls.server_name is None
    assert b.tls is not None and b.tls.server_name == "c.example"
    assert c.targets == [("d.internal", 80)] and c.tls is None


def test_mixed_schemes_are_refused() -> None:
    lines = refused('upstreams: {a: {targets: ["https://a:1", "b:2"]}}')
    assert any(line.startswith("gw.yaml: upstreams.a.targets[0]: a scheme is allowed only")
               for line in lines), lines


def test_upstream_tls_problems() -> None:
    text = "\n".join(refused("""
upstreams:
  a: {targets: ["a:1"], tls: {client_cert: /x.pem}}
  b: {targets: ["a:1"], tls: {ca: /ca.pem, verify: false}}
"""))
    assert "upstreams.a.tls.client_key: client_cert and client_key go together" in text
    assert "upstreams.b.tls.verify: ca is set but verify is false" in text


def test_client_cert_header_must_be_a_field_name() -> None:
    text = "\n".join(refused("server: {client_cert_header: 'x client'}"))
    assert "server.client_cert_header" in text
