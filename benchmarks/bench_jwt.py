"""Microseconds per JWT verification (PyJWT over cryptography), and what edgeward adds.

    .venv/bin/python benchmarks/bench_jwt.py

For RS256 (RSA-2048) and ES256 (P-256): `jwt.decode` alone, the `jwt` method's verify path
(header, key choice, decode, claims, cache write; cache_size 0 so every call verifies) and
its cached path (a token seen before). Best of 5 runs of N calls each.
"""
from __future__ import annotations

import time
from typing import Any

import jwt
from benchkit import best_of
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edgeward.auth.config import JwtConfig
from edgeward.auth.context import AuthContext
from edgeward.auth.jwt import JwtMethod
from edgeward.proxy.subrequest import make_head

N = 2000


def best(fn: Any, n: int = N) -> float:
    return best_of(fn, n, 1e6)


def main() -> None:
    keys = {"RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ES256": ec.generate_private_key(ec.SECP256R1())}
    for alg, key in keys.items():
        pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 3600}, key, algorithm=alg)
        pub = key.public_key()
        decode = best(lambda: jwt.decode(token, pub, algorithms=[alg]))  # noqa: B023
        verify = JwtMethod(JwtConfig(public_key=pem.decode(), algorithms=[alg], cache_size=0),
                           AuthContext(), "bench")
        cached = JwtMethod(JwtConfig(public_key=pem.decode(), algorithms=[alg]),
                           AuthContext(), "bench")
        req = make_head("GET", "/", "bench", [("authorization", f"Bearer {token}")])
        now = time.time()
        assert verify.authenticate(req, now) is not None
        full = best(lambda: verify.authenticate(req, now))  # noqa: B023
        cached.authenticate(req, now)
        hit = best(lambda: cached.authenticate(req, now), n=50_000)  # noqa: B023
        print(f"{alg}: jwt.decode {decode:.1f} us; edgeward verify path {full:.1f} us; "
              f"cached path {hit:.2f} us")


if __name__ == "__main__":
    main()
