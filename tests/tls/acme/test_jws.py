"""JWS, JWK thumbprint (RFC 7638 test shape) and key authorizations."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from edgeward.tls.acme.jws import AccountKey, b64, key_authorization


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_signature_verifies_with_the_public_key() -> None:
    key = AccountKey.generate()
    jws = json.loads(key.sign({"nonce": "n1", "url": "https://ca/x", "kid": "k"}, {"a": 1}))
    protected = json.loads(unb64(jws["protected"]))
    assert protected == {"alg": "ES256", "nonce": "n1", "url": "https://ca/x", "kid": "k"}
    assert json.loads(unb64(jws["payload"])) == {"a": 1}
    raw = unb64(jws["signature"])
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.key.public_key().verify(der, f"{jws['protected']}.{jws['payload']}".encode(),
                                ec.ECDSA(hashes.SHA256()))


def test_post_as_get_has_an_empty_payload() -> None:
    assert json.loads(AccountKey.generate().sign({"nonce": "n"}, None))["payload"] == ""


def test_thumbprint_is_stable_and_canonical() -> None:
    key = AccountKey.generate()
    jwk = key.jwk()
    assert list(jwk) == ["crv", "kty", "x", "y"] and len(unb64(jwk["x"])) == 32
    again = AccountKey.from_pem(key.to_pem())
    assert again.thumbprint() == key.thumbprint() != AccountKey.generate().thumbprint()
    assert key_authorization("tok", key.thumbprint()) == f"tok.{key.thumbprint()}"
    assert b64(b"\xfb\xff") == "-_8"
