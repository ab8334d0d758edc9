"""edgeward.redact: secret keys and URL credentials never shown, everything else kept."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeward.config.text import load_text
from edgeward.redact import (
    REDACTED,
    is_secret_key,
    path_is_secret,
    redact_config,
    redact_text,
    redact_url,
)
from edgeward.structs import ConfigError


@pytest.mark.parametrize(("name", "secret"), [
    ("token", True), ("Password", True), ("secret", True), ("api_key", True),
    ("x-api-key", True), ("client_secret", True), ("authorization", True),
    ("key", False), ("key_prefix", False), ("token_env", False), ("hash_on", False),
    ("url", False),
])
def test_secret_key_names(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


def test_secret_paths() -> None:
    assert path_is_secret("admin.token")
    assert path_is_secret("routes[2].match.headers.x-api-key")
    assert not path_is_secret("routes[2].rate_limit.key")
    assert not path_is_secret("")


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://edge:pw@127.0.0.1:6379/0", f"redis://edge:{REDACTED}@127.0.0.1:6379/0"),
    ("redis://127.0.0.1:6379/0?password=pw&db=1",
     f"redis://127.0.0.1:6379/0?password={REDACTED}&db={REDACTED}"),
    ("https://tok3n@otel.example:4318/v1/traces#frag",
     f"https://{REDACTED}@otel.example:4318/v1/traces#{REDACTED}"),
    ("http://127.0.0.1:4318", "http://127.0.0.1:4318"),
    ("http://h:notaport/", REDACTED),
    ("no url here", "no url here"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_finds_every_url() -> None:
    text = ("gw.yaml: redis.url: must start with redis://, got 'http://u:pw@h:1/?token=t' "
            "and (https://a:b@c/)")
    out = redact_text(text)
    assert "pw" not in out and "token=t" not in out and "a:b@" not in out
    assert f"'http://u:{REDACTED}@h:1/?token={REDACTED}'" in out
    assert out.startswith("gw.yaml: redis.url: must start with redis://, got")


@given(st.text(alphabet="ab:/@?=&# '", max_size=60), st.text(alphabet="xyz", min_size=4,
                                                                  max_size=8))
def test_redact_text_never_shows_a_password(prefix: str, password: str) -> None:
    text = f"{prefix} redis://user:{password}@host/0 {prefix}"
    assert f":{password}@" not in redact_text(text)


def test_redact_config() -> None:
    raw = {"admin": {"token": "t0k", "token_env": "ADMIN_TOKEN", "listen": "127.0.0.1:9"},
           "redis": "redis://u:pw@h/0",
           "tracing": {"otlp_endpoint": "https://k@otel:4318/?token=x"},
           "routes": [{"match": {"headers": {"x-api-key": "abc", "x-tenant": "t"}},
                       "rate_limit": {"key": "header:x-api-key"}}]}
    out = redact_config(raw)
    assert out["admin"] == {"token": REDACTED, "token_env": "ADMIN_TOKEN",
                            "listen": "127.0.0.1:9"}
    assert out["redis"] == f"redis://u:{REDACTED}@h/0"
    assert out["tracing"]["otlp_endpoint"] == f"https://{REDACTED}@otel:4318/?token={REDACTED}"
    assert out["routes"][0]["match"]["headers"] == {"x-api-key": REDACTED, "x-tenant": "t"}
    assert out["routes"][0]["rate_limit"] == {"key": "header:x-api-key"}


@pytest.mark.parametrize(("text", "secret", "expected"), [
    ("admin: {token: 98765432109876}", "98765432109876",
     f"gw.yaml: admin.token: expected a string, got {REDACTED}"),
    ("admin: {token: [s3cr3t-value]}", "s3cr3t-value",
     f"gw.yaml: admin.token: expected a string, got {REDACTED}"),
    ("redis: {url: 'http://edge:pw-123@127.0.0.1:6379/0'}", "pw-123",
     "gw.yaml: redis.url: must start with redis://, rediss:// or unix://, got "
     f"'http://edge:{REDACTED}@127.0.0.1:6379/0'"),
    ("tracing: {otlp_endpoint: 'ftp://u:pw-456@otel/?token=tk-789'}", "pw-456",
     f"gw.yaml: tracing.otlp_endpoint: must be an http(s) URL, got "
     f"'ftp://u:{REDACTED}@otel/?token={REDACTED}'"),
])
def test_problem_messages_never_echo_secrets(text: str, secret: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(text, "gw.yaml")
    lines = info.value.lines()
    assert expected in lines, lines
    assert secret not in str(info.value)
