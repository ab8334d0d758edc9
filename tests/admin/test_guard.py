"""admin/guard.py: which request heads a browser page could send on its own."""

from __future__ import annotations

import pytest

from edgeward.admin.guard import check_request, host_allowed, host_name

YAML = {"content-type": "application/yaml"}


def code(method: str, headers: dict[str, str], listen: str = "127.0.0.1",
         hosts: tuple[str, ...] = ()) -> str | None:
    refusal = check_request(method, headers, listen, hosts)
    return None if refusal is None else refusal[1]


@pytest.mark.parametrize(("value", "name"), [
    ("LocalHost:9901", "localhost"), ("127.0.0.1", "127.0.0.1"), ("[::1]:9901", "::1"),
    ("example.com:x", "example.com:x"), ("[::1", "[::1"),
])
def test_host_name(value: str, name: str) -> None:
    assert host_name(value) == name


@pytest.mark.parametrize(("host", "listen", "hosts", "ok"), [
    ("localhost:9901", "127.0.0.1", (), True),
    ("127.0.0.1:9901", "127.0.0.1", (), True),
    ("127.9.9.9:9901", "127.0.0.1", (), True),       # any loopback address
    ("[::1]:9901", "127.0.0.1", (), True),
    ("rebind.evil.example:9901", "127.0.0.1", (), False),
    ("10.0.0.5:9901", "10.0.0.5", (), True),          # the configured address
    ("10.0.0.6:9901", "10.0.0.5", (), False),
    ("10.0.0.6:9901", "0.0.0.0", (), True),           # wildcard: any IP literal
    ("admin.internal:9901", "0.0.0.0", (), False),    # ... but names must be listed
    ("Admin.Internal:9901", "0.0.0.0", ("admin.internal",), True),
])
def test_host_allowed(host: str, listen: str, hosts: tuple[str, ...], ok: bool) -> None:
    assert host_allowed(host, listen, hosts) is ok


def test_reads_need_only_a_host_naming_the_listener() -> None:
    assert code("GET", {"host": "127.0.0.1:9901"}) is None
    assert code("GET", {}) is None                    # no Host: not a browser
    assert code("GET", {"host": "127.0.0.1", "sec-fetch-site": "cross-site"}) is None  # a link
    assert code("GET", {"host": "rebind.evil.example:9901"}) == "forbidden_host"


def test_changes_need_a_non_form_content_type_or_the_custom_header() -> None:
    host = {"host": "127.0.0.1:9901"}
    assert code("POST", host | YAML) is None
    assert code("POST", host | {"content-type": "application/json; charset=utf-8"}) is None
    assert code("POST", host | {"x-requested-with": "curl"}) is None
    assert code("POST", host) == "unsupported_media_type"
    for form in ("application/x-www-form-urlencoded", "Multipart/Form-Data; boundary=x",
                 "text/plain;charset=UTF-8"):
        assert code("POST", host | {"content-type": form}) == "unsupported_media_type", form


def test_cross_site_changes_are_refused() -> None:
    host = {"host": "127.0.0.1:9901"}
    assert code("POST", host | YAML | {"origin": "http://127.0.0.1:9901"}) is None
    assert code("POST", host | YAML | {"origin": "https://127.0.0.1:9901"}) is None
    assert code("POST", host | YAML | {"origin": "null"}) == "forbidden_origin"
    assert code("POST", host | YAML | {"origin": "http://evil.example"}) == "forbidden_origin"
    assert code("POST", host | YAML | {"origin": "http://127.0.0.1:1234"}) == "forbidden_origin"
    assert code("POST", YAML | {"origin": "http://127.0.0.1:9901"}) == "forbidden_origin"
    assert code("POST", host | YAML | {"sec-fetch-site": "cross-site"}) == "forbidden_origin"
    assert code("POST", host | YAML | {"sec-fetch-site": "same-origin"}) is None


def test_preflights_are_refused() -> None:
    refusal = check_request("OPTIONS", {"host": "localhost", "origin": "http://localhost"},
                            "127.0.0.1")
    assert refusal is not None and refusal[:2] == (403, "forbidden_origin")
