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


def test_a_new_path_replaces_the_request_line_of_a_relayed_head() -> None:
    from edgeward.http.fields import Headers
    from edgeward.http.message import RequestHead

    raw = b"GET /api/items?id=7 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n"
    headers = Headers([(b"Host", b"a"), (b"Accept", b"*/*")], [raw], 2)
    head = RequestHead("GET", b"/api/items?id=7", "/api/items", "a", b"a", headers, 0, "ip")
    head.path = "/items"
    assert head.relayable()
    assert headers.wire == [b"GET /items?id=7 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n"]
    head.query_string = ""
    assert headers.wire == [b"GET /items HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n"]
