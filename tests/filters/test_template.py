"""Header value templates, without sockets."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeward.filters.template import parse
from edgeward.http.fields import Headers
from edgeward.http.message import RequestHead


def request() -> RequestHead:
    headers = Headers([(b"Host", b"api.example"), (b"X-User", b"alice")])
    head = RequestHead("GET", b"/a?b=1", "/a", "api.example", b"api.example", headers, 0,
                       "10.1.2.3", "rid-1")
    head.route_name = "r1"
    head.upstream = "app"
    return head


def test_every_variable() -> None:
    t = parse("${client_ip}|${request_id}|${route}|${upstream}|${host}|${method}|${path}|"
              "${scheme}|${header:x-user}|${header:absent}|$$")
    assert t.expand(request()) == "10.1.2.3|rid-1|r1|app|api.example|GET|/a|http|alice||$"


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=40))
def test_text_without_dollar_is_a_constant(text: str) -> None:
    t = parse(text)
    assert t.constant == text
    assert t.expand(request()) == text


@pytest.mark.parametrize(("text", "reason"), [
    ("$x", "a $ must start"), ("${", "unclosed"), ("${nope}", "unknown variable"),
    ("${header:}", "is not a header name"), ("${header:a b}", "is not a header name"),
])
def test_refusals(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse(text)
