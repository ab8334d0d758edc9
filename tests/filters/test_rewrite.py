"""Path joining and rewrites on heads, without sockets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edgeward.filters.rewrite import StripPrefix, join
from edgeward.http.fields import Headers
from edgeward.http.message import RequestHead

segment = st.text(alphabet="abc/", max_size=8)


@given(st.sampled_from(["", "/", "/v2", "/v2/"]), segment)
def test_join_has_one_slash_at_the_seam(prefix: str, rest: str) -> None:
    out = join(prefix, rest)
    assert out
    seam = len(prefix.rstrip("/"))
    assert not out[seam:].startswith("//") or rest.startswith("//")
    assert out.replace("/", "") == (prefix + rest).replace("/", "")


@given(st.text(alphabet="abc/", max_size=12))
def test_strip_prefix_gives_an_absolute_path(tail: str) -> None:
    path = "/api" + tail
    head = RequestHead("GET", path.encode(), path, "h", b"h", Headers([]), 0, "ip")
    StripPrefix("/api").on_request(head)
    assert head.path.startswith("/")
    assert head.path.lstrip("/") == tail.lstrip("/") or head.path == "/" + tail
    assert head.headers.get("x-forwarded-prefix") == "/api"
