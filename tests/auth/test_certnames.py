"""`client_certs` entries: every spelling of one identity normalises to one key, and what a
certificate presents normalises the same way (hypothesis), and bad entries say why."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeward.auth.certnames import check, dns_name, email, parse

hex_digests = st.binary(min_size=32, max_size=32).map(bytes.hex)


def spellings(digest: str, upper: bool, colons: bool, prefix: str) -> str:
    text = digest.upper() if upper else digest
    if colons:
        text = ":".join(text[i:i + 2] for i in range(0, 64, 2))
    return prefix + text


@given(hex_digests, st.booleans(), st.booleans(), st.sampled_from(["", "sha256:", "SHA256:"]))
def test_every_spelling_of_a_fingerprint_is_the_digest_as_presented(
        digest: str, upper: bool, colons: bool, prefix: str) -> None:
    # The presented side is hashlib's hexdigest(): lower case, no colons.
    assert parse(spellings(digest, upper, colons, prefix)) == ("fingerprint", digest)


labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(st.lists(labels, min_size=1, max_size=4), st.booleans(), st.booleans())
def test_dns_names_match_without_case_or_final_dot(parts: list[str], upper: bool,
                                                   dot: bool) -> None:
    name = ".".join(parts)
    written = (name.upper() if upper else name) + ("." if dot else "")
    assert parse(f"dns:{written}") == ("dns", name)
    assert dns_name(written) == dns_name(name)  # the certificate's side


@given(st.from_regex(r"[A-Za-z0-9._+-]{1,12}", fullmatch=True), st.lists(labels, min_size=1,
                                                                         max_size=3))
def test_emails_keep_the_local_part_and_fold_the_domain(local: str, parts: list[str]) -> None:
    domain = ".".join(parts)
    assert parse(f"email:{local}@{domain.upper()}") == ("email", f"{local}@{domain}")
    assert email(f"{local}@{domain.upper()}") == f"{local}@{domain}"
    if local.lower() != local:
        assert parse(f"email:{local.lower()}@{domain}")[1] != f"{local}@{domain}"


def test_uri_and_cn_are_exact() -> None:
    spiffe = "spiffe://example.org/ns/Prod/sa/billing"
    assert parse(f"uri:{spiffe}") == ("uri", spiffe)
    assert parse("cn:Thermo-17") == ("cn", "Thermo-17")


@pytest.mark.parametrize(("entry", "reason"), [
    ("ab:cd", "expected a SHA-256 fingerprint (64 hex digits) or one of sha256:, uri:"),
    ("thermo-17", "expected a SHA-256 fingerprint"),
    ("ip:10.0.0.1", "expected a SHA-256 fingerprint"),
    ("sha256:" + "0" * 63, "64 hex digits, colons allowed"),
    ("z" * 64, "64 hex digits, colons allowed"),
    ("cn:", "cn: must be followed by the name"),
    ("dns: a.example", "without spaces"),
    ("email:nobody", "local@domain"),
])
def test_bad_entries_say_why(entry: str, reason: str) -> None:
    found = check(entry)
    assert found is not None and reason in found
