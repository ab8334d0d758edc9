"""Defaults pinned, and bad auth configs refused with key paths."""

from __future__ import annotations

import pytest

from edgeward.auth.config import (
    ApiKeyConfig,
    AuthConfig,
    ConsumerConfig,
    ForwardConfig,
    JwtConfig,
)
from edgeward.config.text import load_text
from edgeward.structs import ConfigError, load_struct


def test_defaults_are_pinned() -> None:
    jwt = load_struct(JwtConfig, {"public_key_file": "/k.pem"})
    assert "none" not in jwt.algorithms and "HS256" not in jwt.algorithms
    assert "RS256" in jwt.algorithms and "ES256" in jwt.algorithms and "EdDSA" in jwt.algorithms
    assert (jwt.leeway, jwt.required_claims, jwt.header, jwt.consumer_claim) == (
        60.0, ["exp"], "authorization", "sub")
    assert (jwt.unknown_consumer, jwt.cache_size) == ("allow", 10_000)
    key = load_struct(ApiKeyConfig, {})
    assert (key.header, key.query) == ("apikey", "apikey")
    fwd = load_struct(ForwardConfig, {"upstream": "a"})
    assert (fwd.timeout, fwd.failure_mode, fwd.cache) == (0.2, "deny", None)
    assert fwd.request_headers == ["authorization", "cookie"]
    auth = load_struct(AuthConfig, {"methods": [{"basic": {}}]})
    assert (auth.consumer_header, auth.realm, auth.allow) == ("X-Consumer-Name", "edgeward", None)
    consumer = load_struct(ConsumerConfig, {})
    assert (consumer.metrics, consumer.rate_limit, consumer.api_keys) == (False, None, [])


@pytest.mark.parametrize(("raw", "problem"), [
    ({"algorithms": ["none"], "public_key_file": "k"}, "algorithms[0]: unknown or refused"),
    ({"algorithms": ["HS256"], "public_key_file": "k"}, "need a shared secret"),
    ({"secret": "s", "algorithms": ["RS256"]}, "with secret, only HS256"),
    ({}, "give exactly one of public_key"),
    ({"public_key_file": "k", "jwks": {"upstream": "u"}}, "give exactly one"),
    ({"jwks": {"upstream": "u", "url": "https://x"}}, "jwks.upstream: give either"),
    ({"public_key_file": "k", "header": None}, "give at least one of header, cookie, query"),
])
def test_bad_jwt_configs(raw: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_struct(JwtConfig, raw, path="jwt")
    assert problem in str(err.value)


def test_paths_reach_into_methods_and_upstreams_are_checked() -> None:
    text = """
upstreams: {app: {targets: [127.0.0.1:9]}}
routes:
  - match: {path_prefix: /}
    upstream: app
    filters:
      - auth: {methods: [{jwt: {jwks: {upstream: idp}}}, {forward: {upstream: nope}}]}
"""
    with pytest.raises(ConfigError) as err:
        load_text(text, "f.yaml")
    lines = err.value.lines()
    assert ("f.yaml: routes[0].filters[0].auth.methods[0].jwt.jwks.upstream: "
            "no upstream named 'idp'") in lines
    assert ("f.yaml: routes[0].filters[0].auth.methods[1].forward.upstream: "
            "no upstream named 'nope'") in lines
    with pytest.raises(ConfigError) as err:
        load_text(text.replace("{jwt: {jwks: {upstream: idp}}}", "{saml: {}}"), "f.yaml")
    assert ("auth.methods[0].saml: unknown method (known: jwt, api_key, basic, forward, "
            "client_cert)") in str(err.value)


def test_a_secret_in_a_refused_value_is_never_shown() -> None:
    with pytest.raises(ConfigError) as err:
        load_struct(JwtConfig, {"secret": 12345678, "algorithms": ["HS256"]}, path="jwt")
    assert "12345678" not in str(err.value)
