"""Keys and the JWKS schedule (sans-I/O): algorithms fit their keys; fetches are bounded."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.auth.authkit import SigningKey

from edgeward.auth.jwks import JwksSchedule, KeySet, max_age


@given(st.lists(st.floats(0, 1000), max_size=200), st.floats(0.1, 50))
def test_fetch_starts_are_at_most_one_per_interval(times: list[float], interval: float) -> None:
    """Whatever asks (unknown kids, due refreshes, failures), starts are min_interval apart."""
    schedule = JwksSchedule(refresh=300.0, min_interval=interval)
    starts: list[float] = []
    for now in sorted(times):
        if schedule.may_start(now):
            schedule.started(now)
            starts.append(now)
            schedule.failed(now)
    assert all(b - a >= interval for a, b in zip(starts, starts[1:], strict=False))
    if times:
        assert len(starts) <= (max(times) - min(times)) / interval + 1


def test_refresh_follows_max_age_within_bounds() -> None:
    s = JwksSchedule(refresh=300.0, min_interval=30.0)
    s.started(0.0)
    s.succeeded(0.0, None)
    assert s.next_refresh == 300.0
    s.succeeded(0.0, 5.0)
    assert s.next_refresh == 30.0           # never sooner than min_interval
    s.succeeded(0.0, 10**9)
    assert s.next_refresh == 86_400.0        # never later than a day
    s.failed(100.0)
    assert s.next_refresh == 130.0 and not s.due(120.0) and s.due(130.0)
    assert max_age("public, max-age=600") == 600.0
    assert max_age("no-store, max-age=600") is None and max_age(None) is None


def test_each_key_verifies_only_the_algorithms_it_fits() -> None:
    rsa, ec = SigningKey.rsa("r"), SigningKey.ec("e")
    plain = {k: v for k, v in rsa.jwk().items() if k != "alg"}
    keys = KeySet.from_jwks(json.dumps({"keys": [plain, ec.jwk(), {"kty": "oct", "k": "AA"}]}))
    assert len(keys) == 2                            # a shared secret is never taken from a JWKS
    assert keys.find("r", "RS256") is not None
    r = keys.find("r", "RS256")
    assert r is not None and "HS256" not in r.algorithms and "PS256" in r.algorithms
    e = keys.find("e", "ES256")
    assert e is not None and e.algorithms == frozenset({"ES256"})
    assert keys.find("nope", "RS256") is None
    assert keys.find(None, "ES256") is e             # no kid: the one key fit for the alg
    with pytest.raises(ValueError, match="no usable"):
        KeySet.from_jwks('{"keys": []}')


def test_a_key_without_a_name_is_found_whatever_kid_the_token_carries() -> None:
    """A PEM public key has no kid: a token from an issuer that names its keys still
    verifies against it (nothing else could), with the algorithm check kept."""
    from cryptography.hazmat.primitives import serialization

    rsa = SigningKey.rsa("k")
    pem = rsa.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    keys = KeySet.from_text(pem.decode())
    assert keys.find("k", "RS256") is not None and keys.find("other", "RS256") is not None
    assert keys.find("k", "ES256") is None
