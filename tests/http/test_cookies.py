"""The Cookie header parser: RFC 6265 shapes, first name wins, bounded and linear work."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from edgeward.http.cookies import MAX_COOKIE_BYTES, parse_cookies
from edgeward.http.fields import Headers
from edgeward.http.message import NO_BODY, RequestHead

# RFC 6265 section 4.1.1: cookie-name is a token, cookie-octet excludes CTLs, whitespace,
# DQUOTE, comma, semicolon and backslash.
TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
OCTETS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\')

names = st.text(TOKEN, min_size=1, max_size=12)
values = st.text(OCTETS, max_size=20)
pairs = st.lists(st.tuples(names, values, st.booleans()), max_size=12)


def test_examples() -> None:
    assert parse_cookies("a=1; b=2") == {"a": "1", "b": "2"}
    assert parse_cookies('sid="abc"; x = y ;z=') == {"sid": "abc", "x": "y", "z": ""}
    assert parse_cookies("a=1; a=2") == {"a": "1"}               # first occurrence wins
    assert parse_cookies("novalue; =x; ;c=d=e") == {"c": "d=e"}  # split at the first "="
    assert parse_cookies('q="') == {"q": '"'}                     # a lone quote is kept
    assert parse_cookies("path=/x; expires=y") == {"path": "/x", "expires": "y"}
    assert parse_cookies("") == {}


def test_backslashes_are_opaque() -> None:
    """The CVE-2024-7592 input: a quoted value of backslashes, read as is, not unescaped."""
    raw = 'sid="' + "\\" * 30_000 + '"'
    assert parse_cookies(raw) == {"sid": "\\" * 30_000}


def test_only_the_first_max_bytes_are_read_and_no_pair_is_cut() -> None:
    raw = "a=1; b=" + "x" * 100 + "; c=3"
    assert parse_cookies(raw, max_bytes=20) == {"a": "1"}
    assert parse_cookies(raw, max_bytes=len(raw)) == {"a": "1", "b": "x" * 100, "c": "3"}
    assert parse_cookies("b=" + "x" * 100, max_bytes=20) == {}
    big = "; ".join(f"k{i}=v" for i in range(MAX_COOKIE_BYTES // 4))
    jar = parse_cookies(big)
    assert 0 < len(jar) < MAX_COOKIE_BYTES // 4 and "k0" in jar


@given(pairs)
def test_agrees_with_the_rfc_6265_reference_on_well_formed_headers(
        items: list[tuple[str, str, bool]]) -> None:
    header = "; ".join(f'{n}="{v}"' if quoted else f"{n}={v}" for n, v, quoted in items)
    expected: dict[str, str] = {}
    for n, v, _ in items:
        expected.setdefault(n, v)
    assert parse_cookies(header) == expected


def _lines_run(fn: Any, *args: Any) -> int:
    """Python lines executed inside parse_cookies: its own work, apart from builtins that each
    make one pass over their argument."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if frame.f_code is parse_cookies.__code__:
            if event == "line":
                count += 1
            return tracer
        return None

    sys.settrace(tracer)
    try:
        fn(*args)
    finally:
        sys.settrace(None)
    return count


@given(st.text(alphabet='ab=;" \\\t', max_size=300))
def test_work_is_linear_in_the_pieces_of_the_header(header: str) -> None:
    pieces = header.count(";") + 1
    assert _lines_run(parse_cookies, header) <= 12 * pieces + 8


def test_a_long_hostile_value_costs_one_piece() -> None:
    hostile = 'sid="' + "\\" * 30_000 + '"'
    assert _lines_run(parse_cookies, hostile) == _lines_run(parse_cookies, 'sid="x"')


def test_request_head_reads_cookies_with_this_parser() -> None:
    head = RequestHead("GET", b"/", "/", "h", b"h",
                       Headers([(b"Cookie", b'sid="' + b"\\" * 10 + b'"; sid=2; t=u')]),
                       NO_BODY, "127.0.0.1", "r1")
    assert head.cookie("sid") == "\\" * 10
    assert head.cookie("t") == "u"
    assert head.cookie("nope") is None
