"""Routes without an upstream: `redirect:` and `respond:` over real sockets."""

from __future__ import annotations

from filters.conftest import Edge  # type: ignore[import-not-found]
from support.rawhttp import exchange, get


def test_prefix_redirect_keeps_the_rest_and_the_query(edge: Edge) -> None:
    resp = get(edge.port, "/old/a/b?x=1&y=2", host="redirect.test")
    assert resp.status == 308
    assert resp.header("location") == "http://redirect.test/new/a/b?x=1&y=2"
    assert resp.body == b""


def test_redirect_keeps_the_port_the_client_used(edge: Edge) -> None:
    resp = get(edge.port, "/old", host="redirect.test:8080")
    assert resp.header("location") == "http://redirect.test:8080/new"


def test_https_redirect(edge: Edge) -> None:
    resp = get(edge.port, "/pay?amount=3", host="https.test:8080")
    assert resp.status == 301
    assert resp.header("location") == "https://https.test/pay?amount=3"


def test_redirect_to_another_host_port_and_path_without_query(edge: Edge) -> None:
    resp = get(edge.port, "/anything?secret=1", host="elsewhere.test")
    assert resp.status == 302
    assert resp.header("location") == "http://other.example:8443/landing"


def test_redirect_is_answered_for_post_too_without_reading_upstream(edge: Edge) -> None:
    mark = edge.echo.mark()
    resp = get(edge.port, "/old/form", host="redirect.test", method="POST", body=b"a=1")
    assert resp.status == 308
    assert edge.echo.requests_since(mark) == []


def test_respond_inline_body(edge: Edge) -> None:
    resp = get(edge.port, "/ping", host="respond.test")
    assert (resp.status, resp.body) == (200, b"pong")
    assert resp.header("content-type") == "text/plain; charset=utf-8"
    assert resp.header("x-request-id")


def test_respond_file_body_with_headers(edge: Edge) -> None:
    resp = get(edge.port, "/down", host="respond.test")
    assert resp.status == 503
    assert resp.body == edge.maintenance
    assert resp.header("content-type") == "text/html"
    assert resp.header("retry-after") == "120"


def test_respond_to_head_has_no_body(edge: Edge) -> None:
    resp = exchange(edge.port, b"HEAD /ping HTTP/1.1\r\nHost: respond.test\r\n\r\n",
                    head_request=True)
    assert resp.status == 200
    assert resp.header("content-length") == "4"
    assert resp.body == b""
