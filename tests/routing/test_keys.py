"""Key grammar: parse errors name the problem; extractors read the right part of a request."""

from __future__ import annotations

import pytest

from edgeward.auth.consumer import Consumer
from edgeward.request import SimpleRequest
from edgeward.routing.keys import parse_key

REQ = SimpleRequest(
    method="GET", host="api.example.com", path="/orders/7", client_ip="10.1.2.3",
    headers={"X-User-Id": "u42", "X-Consumer-Id": "acme", "X-Tenant": "t9"},
    cookies={"session": "s1", "Session": "S2"}, query={"page": "3"},
    consumer=Consumer("acme"),
)


@pytest.mark.parametrize(("spec", "expected"), [
    ("client_ip", "10.1.2.3"),
    ("header:x-user-id", "u42"),
    ("header:X-USER-ID", "u42"),        # header names are case-insensitive
    ("cookie:session", "s1"),
    ("cookie:Session", "S2"),           # cookie names are exact
    ("query:page", "3"),
    ("path", "/orders/7"),
    ("route", "orders-route"),
    ("consumer", "acme"),
    ("header:x-missing", None),
    ("cookie:missing", None),
    ("query:missing", None),
])
def test_extract(spec: str, expected: str | None) -> None:
    assert parse_key(spec).extract(REQ, "orders-route") == expected


def test_consumer_is_the_authenticated_one_never_a_header() -> None:
    forged = SimpleRequest(headers={"X-Consumer-Id": "acme", "X-Consumer-Name": "acme"})
    assert parse_key("consumer").extract(forged, "r") is None
    assert parse_key("consumer").extract(SimpleRequest(consumer=Consumer("bob")), "r") == "bob"


@pytest.mark.parametrize(("spec", "reason"), [
    ("ip", "unknown key 'ip' (known: client_ip, path, route, consumer, header:NAME"),
    ("header", "header needs a name, e.g. header:x-user-id"),
    ("header:", "header needs a name"),
    ("cookie:", "cookie needs a name"),
    ("path:x", "path takes no name (write just 'path')"),
    ("client_ip:v4", "client_ip takes no name"),
    ("header:x user", "'x user' is not a valid header name"),
    ("cookie:a;b", "'a;b' is not a valid cookie name"),
    ("query:a&b", "query parameter name cannot contain"),
    ("", "unknown key ''"),
])
def test_parse_errors_say_why(spec: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_key(spec)
    assert reason in str(info.value)


def test_specs_compare_by_meaning_and_show_their_text() -> None:
    assert parse_key("header:X-A") == parse_key("header:x-a")
    assert parse_key("header:x-a") != parse_key("cookie:x-a")
    assert len({parse_key("path"), parse_key("path")}) == 1
    assert repr(parse_key("header:X-A")) == "<KeySpec header:X-A>"
