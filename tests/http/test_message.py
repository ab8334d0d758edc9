"""Heads without sockets: cutting fields from a received response head."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edgeward.http.message import ResponseHead, parse_fields

name = st.sampled_from([b"Server", b"server", b"X-A", b"x-a", b"Vary", b"ETag", b"x-b"])
value = st.sampled_from([b"1", b"a b", b"x-a: not a name", b"", b"Server"])


@given(st.lists(st.tuples(name, value), max_size=8),
       st.sets(st.sampled_from([b"server", b"x-a", b"vary", b"x-none"]), min_size=1))
def test_dropping_fields_from_the_raw_head_is_removing_them(
        fields: list[tuple[bytes, bytes]], names: set[bytes]) -> None:
    raw = b"HTTP/1.1 200 OK\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in fields)
    resp = ResponseHead(200, None, 0, raw)
    resp.drop_fields(frozenset(names))
    kept = [(n, v) for n, v in parse_fields(raw) if n.lower() not in names]
    assert parse_fields(resp.raw) == kept
    assert resp.raw.startswith(b"HTTP/1.1 200 OK\r\n") and resp.raw.endswith(b"\r\n")
    assert resp.relayable()
