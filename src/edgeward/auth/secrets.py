"""Credentials as the gateway keeps them: SHA-256 digests, compared in constant time.

A credential in the config (an API key, a basic-auth password, an HS256 secret) is written
one of three ways:

    sha256:9f86d081884c7d65...   the hex SHA-256 of the secret: the secret is never in the file
    env:ALICE_KEY                the secret is the environment variable's value
    anything else                the secret itself (kept out of /config and logs, but in the file)

API keys and passwords are turned into digests when the config is compiled and only digests
are kept; a presented credential is digested and compared with `hmac.compare_digest`. API keys
are also found by digest (a dict lookup on a hash of the presented key reveals nothing about
stored keys through timing). Unsalted SHA-256 suits API keys (random, high entropy); for a
password it is what Kong's basic-auth does (SHA-1 with the consumer id as salt): an offline
guess costs little, so the file must be protected like any secret store and `env:` preferred.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from collections.abc import Mapping
from typing import Final

SHA256_PREFIX: Final = "sha256:"
ENV_PREFIX: Final = "env:"
_HEX: Final = frozenset(string.hexdigits)


def digest(secret: str) -> bytes:
    """The SHA-256 digest the gateway keeps for `secret`."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def same(stored: bytes, presented: str) -> bool:
    """Whether `presented` digests to `stored`, in time independent of where they differ."""
    return hmac.compare_digest(stored, digest(presented))


def check_reference(text: str) -> str | None:
    """Why `text` is not a usable credential reference (None when it is). Never quotes it."""
    if not text:
        return "must not be empty"
    if text.startswith(SHA256_PREFIX):
        hexa = text[len(SHA256_PREFIX):]
        if len(hexa) != 64 or not set(hexa) <= _HEX:
            return "sha256: must be followed by 64 hex digits (the SHA-256 of the secret)"
    elif text.startswith(ENV_PREFIX) and not text[len(ENV_PREFIX):]:
        return "env: must be followed by an environment variable name"
    return None


def resolve_secret(text: str, environ: Mapping[str, str]) -> str:
    """The secret itself for `env:` and plain references (ValueError: variable not set or
    empty); sha256: references have no secret to give."""
    if text.startswith(ENV_PREFIX):
        name = text[len(ENV_PREFIX):]
        value = environ.get(name)
        if not value:
            raise ValueError(f"environment variable {name} is not set (or empty)")
        return value
    if text.startswith(SHA256_PREFIX):
        raise ValueError("a sha256: reference cannot be used where the secret itself is needed")
    return text


def resolve_digest(text: str, environ: Mapping[str, str]) -> bytes:
    """The digest a reference stands for (ValueError: its variable is not set)."""
    if text.startswith(SHA256_PREFIX):
        return bytes.fromhex(text[len(SHA256_PREFIX):])
    return digest(resolve_secret(text, environ))
