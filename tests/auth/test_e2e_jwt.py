"""End to end: JWT with keys made at test time, a real JWKS endpoint whose keys rotate
mid-test, a JWKS endpoint that goes down, the refetch storm, and the refused tokens."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from tests.auth.authkit import JwksOrigin, SigningKey, jwks, request, seen_headers
from tests.support.gateway import GatewayProcess
from tests.support.origin import Origin

CONFIG = """
listen: {listen}
upstreams:
  app: {targets: [%(origin)s]}
  idp: {targets: [%(idp)s]}
consumers:
  alice: {groups: [staff]}
routes:
  - match: {path_prefix: /}
    upstream: app
    filters:
      - jwt:
          jwks: {upstream: idp, path: /keys, min_refetch_interval: %(refetch)s,
                 refresh_interval: %(refresh)s}
          issuers: [https://idp.test]
          audiences: [api]
          claims_to_headers: {email: x-user-email}
"""


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def claims(**extra: object) -> dict[str, object]:
    return {"iss": "https://idp.test", "aud": "api", **extra}


def wait_for(probe, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    return probe()


@pytest.fixture
def setup() -> Iterator[tuple[GatewayProcess, JwksOrigin, SigningKey, SigningKey]]:
    a, b = SigningKey.rsa("key-a"), SigningKey.ec("key-b")
    idp = JwksOrigin(doc=jwks(a))
    with Origin() as origin:
        text = CONFIG % {"origin": origin.address, "idp": idp.address, "refetch": "200ms",
                         "refresh": "1h"}
        with GatewayProcess.config(text) as gw:
            yield gw, idp, a, b
    idp.stop()


def test_a_valid_token_admits_its_consumer_with_claim_headers(setup) -> None:  # type: ignore[no-untyped-def]
    gw, idp, a, _ = setup
    token = a.token("alice", **claims(email="alice@example.com"))
    answer = request(gw.port, "/x", {**bearer(token), "x-user-email": "forged@example.com"})
    assert answer.status == 200
    seen = seen_headers(answer)
    assert seen["x-consumer-name"] == ["alice"]
    assert seen["x-user-email"] == ["alice@example.com"]
    # the same token again: admitted from the cache, same result
    again = request(gw.port, "/x", bearer(token))
    assert again.status == 200 and seen_headers(again)["x-user-email"] == ["alice@example.com"]


def test_keys_rotate_mid_test(setup) -> None:  # type: ignore[no-untyped-def]
    gw, idp, a, b = setup
    old = a.token("alice", **claims())
    assert request(gw.port, "/", bearer(old)).status == 200
    idp.doc = jwks(b)  # the IdP rotates: key-b signs now, key-a is withdrawn
    time.sleep(0.3)    # past min_refetch_interval
    new = b.token("alice", **claims())
    assert request(gw.port, "/", bearer(new)).status == 200  # unknown kid -> one refetch
    # the old token's key is gone: its cached verification no longer counts
    refused = request(gw.port, "/", bearer(old))
    assert refused.status == 401
    assert 'error="invalid_token"' in (refused.header("www-authenticate") or "")


def test_the_last_good_keys_serve_while_the_jwks_endpoint_is_down() -> None:
    a = SigningKey.rsa("key-a")
    idp = JwksOrigin(doc=jwks(a))
    with Origin() as origin:
        text = CONFIG % {"origin": origin.address, "idp": idp.address, "refetch": "100ms",
                         "refresh": "100ms"}
        with GatewayProcess.config(text) as gw:
            assert request(gw.port, "/", bearer(a.token("alice", **claims()))).status == 200
            idp.status = 503
            before = idp.count()
            # requests trigger refreshes, which fail; fresh tokens still verify
            assert wait_for(lambda: request(
                gw.port, "/", bearer(a.token("alice", **claims()))).status == 200
                and idp.count() >= before + 2)
            assert request(gw.port, "/", bearer(a.token("alice", **claims()))).status == 200
    idp.stop()


def test_random_kids_cause_at_most_one_fetch_per_interval() -> None:
    a = SigningKey.rsa("key-a")
    idp = JwksOrigin(doc=jwks(a))
    interval = 2.0
    with Origin() as origin:
        text = CONFIG % {"origin": origin.address, "idp": idp.address, "refetch": "2s",
                         "refresh": "1h"}
        with GatewayProcess.config(text) as gw:
            assert request(gw.port, "/", bearer(a.token("alice", **claims()))).status == 200
            start, fetched = time.monotonic(), idp.count()
            statuses = set()
            for _ in range(1000):
                forged = a.token("alice", kid=uuid.uuid4().hex, **claims())
                statuses.add(request(gw.port, "/", bearer(forged)).status)
            elapsed = time.monotonic() - start
            fetches = idp.count() - fetched
    idp.stop()
    assert statuses == {401}
    # at most one fetch per min_refetch_interval (plus the one a boundary may add)
    assert fetches <= elapsed / interval + 1, (fetches, elapsed)


def test_refused_tokens(setup) -> None:  # type: ignore[no-untyped-def]
    gw, idp, a, _ = setup
    cases = {
        "expired": a.token("alice", ttl=-120, **claims()),   # past exp + 60 s leeway
        "wrong issuer": a.token("alice", **{**claims(), "iss": "https://evil.test"}),
        "wrong audience": a.token("alice", **{**claims(), "aud": "other"}),
        "no exp": pyjwt.encode({"sub": "alice", **claims()}, a.private, algorithm="RS256",
                               headers={"kid": "key-a"}),
        "not a jwt": "abc.def",
    }
    pem = a.private.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    # alg confusion: HS256 with the RSA public key as the HMAC secret
    header = base64.urlsafe_b64encode(json.dumps(
        {"alg": "HS256", "kid": "key-a", "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(
        {"sub": "alice", "exp": int(time.time()) + 300, **claims()}).encode()).rstrip(b"=")
    import hashlib
    import hmac
    sig = base64.urlsafe_b64encode(hmac.new(pem, header + b"." + body, hashlib.sha256)
                                   .digest()).rstrip(b"=")
    cases["hs256 with the public key"] = (header + b"." + body + b"." + sig).decode()
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","kid":"key-a"}').rstrip(b"=")
    cases["alg none"] = (none_header + b"." + body + b".").decode()
    for what, token in cases.items():
        answer = request(gw.port, "/", bearer(token))
        assert answer.status == 401, what
        assert answer.json()["code"] == "unauthenticated", what
        assert answer.header("www-authenticate", ).startswith('Bearer realm="edgeward"'), what
    missing = request(gw.port, "/")
    assert missing.status == 401
    assert missing.header("www-authenticate") == 'Bearer realm="edgeward"'
