"""JSON Web Signatures for ACME (RFC 7515/7518/7638): an EC P-256 account key, ES256."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data: bytes) -> str:
    """base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class AccountKey:
    """The ACME account's key pair: P-256, signing with ES256."""

    __slots__ = ("key",)

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"the ACME account key must be P-256, got {key.curve.name}")
        self.key = key

    @classmethod
    def generate(cls) -> AccountKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, data: bytes) -> AccountKey:
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the ACME account key must be an EC key")
        return cls(key)

    def to_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def jwk(self) -> dict[str, str]:
        numbers = self.key.public_key().public_numbers()
        return {"crv": "P-256", "kty": "EC", "x": b64(numbers.x.to_bytes(32, "big")),
                "y": b64(numbers.y.to_bytes(32, "big"))}

    def thumbprint(self) -> str:
        """RFC 7638: SHA-256 of the required members in lexicographic order, no spaces."""
        canonical = json.dumps(self.jwk(), sort_keys=True, separators=(",", ":"))
        return b64(hashlib.sha256(canonical.encode()).digest())

    def sign(self, protected: dict[str, Any], payload: dict[str, Any] | None) -> bytes:
        """A flattened JWS; `payload` None is the empty payload of POST-as-GET."""
        head = b64(json.dumps({"alg": "ES256", **protected}).encode())
        body = "" if payload is None else b64(json.dumps(payload).encode())
        der = self.key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        return json.dumps({"protected": head, "payload": body,
                           "signature": signature}).encode()


def key_authorization(token: str, thumbprint: str) -> str:
    """RFC 8555 section 8.1: what the CA expects to find for `token`."""
    return f"{token}.{thumbprint}"
