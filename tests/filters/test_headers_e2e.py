"""request_headers and response_headers over real sockets: remove, set, add, variables, the
precedence of the gateway's own fields, and the head-size bound on expanded values."""

from __future__ import annotations

from filters.conftest import Edge  # type: ignore[import-not-found]
from support.rawhttp import get


def test_request_headers_remove_set_add_with_variables(edge: Edge) -> None:
    resp = get(edge.port, "/echo", host="headers.test",
               headers=[("x-debug", "1"), ("x-env", "dev"), ("x-env", "qa"), ("x-user", "acme"),
                        ("x-request-id", "req-42")])
    assert resp.status == 200
    seen = edge.seen(resp.body)
    assert "x-debug" not in seen
    assert seen["x-env"] == ["prod"]                      # set replaces every field of it
    assert seen["x-via"] == ["headers"]                   # ${route}
    assert seen["x-who"] == ["127.0.0.1 req-42"]          # ${client_ip} ${request_id}
    assert seen["x-tenant"] == ["t-acme"]                 # ${header:x-user}
    assert seen["x-up"] == ["echo"]                       # ${upstream}
    assert seen["x-request-id"] == ["req-42"]


def test_a_missing_header_variable_expands_to_nothing(edge: Edge) -> None:
    seen = edge.seen(get(edge.port, "/echo", host="headers.test").body)
    assert seen["x-tenant"] == ["t-"]


def test_a_filter_value_wins_over_the_gateways_forwarded_field(edge: Edge) -> None:
    """X-Forwarded-Proto is the gateway's (http here); the route's `set` replaces it."""
    seen = edge.seen(get(edge.port, "/echo", host="headers.test").body)
    assert seen["x-forwarded-proto"] == ["https"]
    assert seen["x-forwarded-for"] == ["127.0.0.1"]      # untouched: still the gateway's


def test_expanded_values_over_the_head_limit_get_431(edge: Edge) -> None:
    big = "b" * 20_000  # within the 32 KiB head limit; copied twice it is not
    resp = get(edge.port, "/echo", host="big-headers.test", headers=[("x-big", big)])
    assert resp.status == 431
    assert resp.json()["code"] == "header_too_large"
    ok = get(edge.port, "/echo", host="big-headers.test", headers=[("x-big", "small")])
    assert edge.seen(ok.body)["x-copy1"] == ["small"]


def test_response_headers_remove_set_add(edge: Edge) -> None:
    resp = get(edge.port, "/json?n=100", host="resp-headers.test")
    assert resp.status == 200
    assert resp.header("server") is None
    assert resp.header("strict-transport-security") == "max-age=31536000"
    assert resp.header("x-frame-options") == "DENY"
    assert resp.header("x-served-by") == "content resp_headers"
    assert resp.header("etag") == '"v1"'                  # others pass as they were
    assert len(resp.body) == 100


def test_response_add_only_keeps_the_upstreams_fields(edge: Edge) -> None:
    resp = get(edge.port, "/json?n=100", host="resp-add.test")
    assert resp.header("x-edge") == "1"
    assert resp.header("server") == "scripted-origin"
    assert resp.header("content-length") == "100"
    assert resp.header_all("x-request-id") and len(resp.header_all("x-request-id")) == 1


def test_a_failing_filter_answers_500_filter_error_through_the_filters_it_passed(
        edge: Edge) -> None:
    """The route's Python filter (ORDER_USER) raises: 500 filter_error, and the filters that
    run before it (CORS, response_headers at ORDER_REWRITE) still see the response."""
    mark = edge.echo.mark()
    resp = get(edge.port, "/echo", host="broken.test", headers=[("origin", "https://a.example")])
    assert resp.status == 500
    assert resp.json()["code"] == "filter_error"
    assert resp.header("access-control-allow-origin") == "*"
    assert resp.header("x-passed") == "1"
    assert edge.echo.requests_since(mark) == []
