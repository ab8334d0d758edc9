"""Certificate selection by SNI: RFC 6125 wildcard rules, exact-over-wildcard, default."""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from tests.tls.certkit import Authority

from edgeward.tls.certs import read_pair
from edgeward.tls.config import CertificateConfig
from edgeward.tls.sni import SniTable, covers, names_of, normalize, wildcard_key

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
domain = st.lists(label, min_size=2, max_size=5).map(".".join)


def test_exact_beats_wildcard_and_default_is_first() -> None:
    table = SniTable.of([(["a.example.com", "example.com"], "first"),
                         (["*.example.com"], "wild"),
                         (["b.example.com"], "b")])
    assert table.select("a.example.com") == "first"
    assert table.select("b.example.com") == "b"
    assert table.select("c.example.com") == "wild"
    assert table.select("x.c.example.com") == "first"      # two labels deep: default
    assert table.select("example.com") == "first"
    assert table.select("other.org") == "first"
    assert table.select(None) == "first" and table.select("") == "first"
    assert table.match("other.org") is None


def test_names_compare_case_insensitively_without_trailing_dot() -> None:
    table = SniTable.of([(["Api.Example.COM."], 1), (["*.Example.com"], 2)])
    assert table.select("API.example.com") == 1
    assert table.select("api.example.com.") == 1
    assert table.select("Www.EXAMPLE.com") == 2


def test_first_certificate_keeps_a_shared_name() -> None:
    table = SniTable.of([(["x.test"], "one"), (["x.test", "y.test"], "two")])
    assert (table.select("x.test"), table.select("y.test")) == ("one", "two")


def test_partial_wildcards_match_nothing() -> None:
    table = SniTable.of([(["d.test"], "default"), (["f*.example.com"], "partial")])
    assert table.select("foo.example.com") == "default"


@given(domain, label)
def test_wildcard_covers_exactly_one_more_label(base: str, first: str) -> None:
    pattern = "*." + base
    assert covers(pattern, f"{first}.{base}")
    assert not covers(pattern, base)
    assert not covers(pattern, f"{first}.{first}.{base}")
    table = SniTable.of([(["default.invalid"], "d"), ([pattern], "w")])
    assert table.select(f"{first}.{base}") == "w"
    assert table.select(base) == "d"
    assert table.select(f"x{first}.{first}.{base}") == "d"


@given(st.lists(domain, min_size=1, max_size=6), domain)
def test_table_agrees_with_covers(names: list[str], asked: str) -> None:
    """select() returns the first entry covering the name exactly, else the first wildcard
    covering it, else the default - whatever the entries."""
    entries = [([n if i % 2 else "*." + n.partition(".")[2]], i) for i, n in enumerate(names)]
    table = SniTable(entries, default=-1)
    exact = [i for pats, i in entries for p in pats if p == normalize(asked)]
    wild = [i for pats, i in entries for p in pats if p.startswith("*.") and covers(p, asked)]
    expected = exact[0] if exact else wild[0] if wild else -1
    assert table.select(asked) == expected


@given(domain)
def test_wildcard_key_strips_one_label(name: str) -> None:
    key = wildcard_key(name)
    assert key is not None and key == "*." + name.partition(".")[2]
    assert wildcard_key("localhost") is None


def test_names_come_from_san_and_cn_only_without_san(inter: Authority, tmp_path: Path) -> None:
    with_san = inter.issue(["a.test", "B.test"], cn="ignored.test")
    assert names_of(with_san.cert) == ("a.test", "b.test")
    no_san = inter.issue(["cn-only.test"], san=False)
    assert names_of(no_san.cert) == ("cn-only.test",)
    cert, key = no_san.write(tmp_path / "n")
    pair = read_pair(CertificateConfig(cert=str(cert), key=str(key)), "c", time.time())
    assert pair.names == ("cn-only.test",)
