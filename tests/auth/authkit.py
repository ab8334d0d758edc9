"""Helpers for the authentication tests: keys made at test time, signed tokens, a JWKS origin
whose keys the test rotates, a forward-auth service, and a client that keeps repeated
response fields (several WWW-Authenticate challenges)."""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from tests.support.scripted import ScriptedOrigin


@dataclass
class Answer:
    status: int
    fields: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.fields if n.lower() == name.lower()), None)

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.fields if n.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


def request(port: int, path: str, headers: dict[str, str] | None = None,
            method: str = "GET", timeout: float = 10.0) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return Answer(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()


def seen_headers(answer: Answer) -> dict[str, list[str]]:
    """What the echo origin received: header name (lower case) -> values."""
    out: dict[str, list[str]] = {}
    for name, value in answer.json()["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def sha256_ref(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


# --- keys and tokens ----------------------------------------------------------------------
@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    @staticmethod
    def rsa(kid: str, alg: str = "RS256") -> SigningKey:
        return SigningKey(kid, alg, rsa.generate_private_key(public_exponent=65537,
                                                             key_size=2048))

    @staticmethod
    def ec(kid: str) -> SigningKey:
        return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        pub = self.private.public_key()
        algo = RSAAlgorithm if self.alg.startswith(("RS", "PS")) else ECAlgorithm
        data: dict[str, Any] = algo.to_jwk(pub, as_dict=True)
        data.update(kid=self.kid, use="sig", alg=self.alg)
        return data

    def token(self, sub: str = "alice", ttl: float = 300.0, kid: str | None = None,
              **claims: Any) -> str:
        now = int(time.time())
        body = {"sub": sub, "iat": now, "exp": now + int(ttl), **claims}
        return jwt.encode(body, self.private, algorithm=self.alg,
                          headers={"kid": kid if kid is not None else self.kid})


def jwks(*keys: SigningKey) -> bytes:
    return json.dumps({"keys": [k.jwk() for k in keys]}).encode()


@dataclass
class JwksOrigin:
    """Serves `doc` at any path with `status`, counting fetches; the test rotates `doc`."""

    doc: bytes = b'{"keys": []}'
    status: int = 200
    cache_control: str | None = None
    fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    origin: ScriptedOrigin = field(default_factory=ScriptedOrigin)

    def __post_init__(self) -> None:
        self.origin.reply = self._reply

    @property
    def address(self) -> str:
        return self.origin.address

    def _reply(self, head: bytes) -> bytes:
        with self.lock:
            self.fetches += 1
            doc, status, cc = self.doc, self.status, self.cache_control
        if status != 200:
            doc = b"unavailable"
        extra = f"cache-control: {cc}\r\n".encode() if cc else b""
        return (b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\n%bcontent-length: %d\r\n"
                b"\r\n%b" % (status, extra, len(doc), doc))

    def count(self) -> int:
        with self.lock:
            return self.fetches

    def stop(self) -> None:
        self.origin.stop()


class AuthService:
    """A forward-auth service: `Authorization: Bearer good-<name>` is admitted as <name>
    (X-Auth-User: <name>, X-Auth-Role: reader); anything else gets 401 with its own body
    and challenge. Every check is recorded."""

    def __init__(self) -> None:
        self.origin = ScriptedOrigin()
        self.origin.reply = self._reply
        self.checks: list[bytes] = []
        self.lock = threading.Lock()

    @property
    def address(self) -> str:
        return self.origin.address

    def _reply(self, head: bytes) -> bytes:
        with self.lock:
            self.checks.append(head)
        auth = b""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"authorization":
                auth = value.strip()
        if auth.startswith(b"Bearer good-"):
            user = auth[len(b"Bearer good-"):]
            return (b"HTTP/1.1 200 OK\r\nx-auth-user: %b\r\nx-auth-role: reader\r\n"
                    b"content-length: 0\r\n\r\n" % user)
        body = b'{"error":"who are you"}'
        return (b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n"
                b'www-authenticate: Bearer realm="sso"\r\ncontent-length: %d\r\n\r\n%b'
                % (len(body), body))

    def count(self) -> int:
        with self.lock:
            return len(self.checks)

    def stop(self) -> None:
        self.origin.stop()
