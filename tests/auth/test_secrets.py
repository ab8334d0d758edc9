from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeward.auth.secrets import check_reference, digest, resolve_digest, resolve_secret, same


@given(st.text(min_size=1))
def test_a_secret_matches_its_digest_and_nothing_else(secret: str) -> None:
    stored = digest(secret)
    assert same(stored, secret)
    assert not same(stored, secret + "x")


def test_references() -> None:
    env = {"KEY": "from-env"}
    hexa = hashlib.sha256(b"plain").hexdigest()
    assert resolve_digest(f"sha256:{hexa}", env) == digest("plain")
    assert resolve_digest("env:KEY", env) == digest("from-env")
    assert resolve_digest("plain", env) == digest("plain")
    assert resolve_secret("env:KEY", env) == "from-env"
    with pytest.raises(ValueError, match="environment variable MISSING is not set"):
        resolve_digest("env:MISSING", env)
    with pytest.raises(ValueError, match="cannot be used where the secret itself"):
        resolve_secret(f"sha256:{hexa}", env)


@pytest.mark.parametrize(("ref", "reason"), [
    ("", "must not be empty"),
    ("sha256:abc", "64 hex digits"),
    ("sha256:" + "g" * 64, "64 hex digits"),
    ("env:", "environment variable name"),
])
def test_bad_references_are_explained_without_quoting(ref: str, reason: str) -> None:
    found = check_reference(ref)
    assert found is not None and reason in found
    if ref.startswith("sha256:") and len(ref) > 10:
        assert ref[7:] not in found
