"""cors over real sockets: preflights answered by the gateway (before authentication),
refusals with 403 cors_rejected, allowed origins' responses, Vary, credentials."""

from __future__ import annotations

from filters.conftest import Edge  # type: ignore[import-not-found]
from support.rawhttp import Response, get


def preflight(edge: Edge, host: str, origin: str, method: str,
              headers: str | None = None) -> Response:
    fields = [("origin", origin), ("access-control-request-method", method)]
    if headers is not None:
        fields.append(("access-control-request-headers", headers))
    return get(edge.port, "/cors?n=100", host=host, method="OPTIONS", headers=fields)


def test_allowed_preflight_is_answered_by_the_gateway(edge: Edge) -> None:
    mark = edge.content.take()
    resp = preflight(edge, "cors.test", "https://app.example", "PUT", "Content-Type, X-Token")
    assert resp.status == 204
    assert resp.header("access-control-allow-origin") == "https://app.example"
    assert resp.header("access-control-allow-credentials") == "true"
    assert resp.header("access-control-allow-methods") == "GET, POST, PUT"
    assert resp.header("access-control-allow-headers") == "content-type, x-token"
    assert resp.header("access-control-max-age") == "600"
    assert "Origin" in (resp.header("vary") or "")
    assert edge.content.take() == [] and mark is not None  # the upstream saw nothing


def test_wildcard_origin_pattern(edge: Edge) -> None:
    assert preflight(edge, "cors.test", "https://a.b.corp.example", "GET").status == 204
    assert preflight(edge, "cors.test", "https://corp.example", "GET").status == 403
    assert preflight(edge, "cors.test", "http://a.corp.example", "GET").status == 403
    assert preflight(edge, "cors.test", "https://evil.example/.corp.example", "GET").status \
        == 403


def test_disallowed_preflights_get_403_cors_rejected_saying_why(edge: Edge) -> None:
    cases = [
        (("https://evil.example", "GET", None), "origin https://evil.example is not allowed"),
        (("https://app.example", "DELETE", None), "method DELETE is not allowed"),
        (("https://app.example", "POST", "x-token, x-secret"), "header x-secret is not allowed"),
    ]
    for (origin, method, headers), reason in cases:
        resp = preflight(edge, "cors.test", origin, method, headers)
        assert resp.status == 403, resp
        doc = resp.json()
        assert (doc["code"], doc["detail"]) == ("cors_rejected", reason)
        assert resp.header("access-control-allow-origin") is None


def test_preflight_is_answered_before_authentication(edge: Edge) -> None:
    """The route's (stand-in) auth filter refuses every request it sees; the preflight never
    reaches it, the actual request does."""
    ok = preflight(edge, "cors-auth.test", "https://app.example", "POST", "content-type")
    assert ok.status == 204
    actual = get(edge.port, "/x", host="cors-auth.test", headers=[("origin", "https://app.example")])
    assert actual.status == 401
    # The refusal still carries CORS fields: the page can read why it was refused.
    assert actual.header("access-control-allow-origin") == "https://app.example"


def test_simple_request_from_an_allowed_origin_gets_the_fields(edge: Edge) -> None:
    resp = get(edge.port, "/cors?n=100", host="cors.test",
               headers=[("origin", "https://app.example")])
    assert resp.status == 200
    # The upstream's own Access-Control-Allow-Origin is replaced, never doubled.
    assert resp.header_all("access-control-allow-origin") == ["https://app.example"]
    assert resp.header("access-control-allow-credentials") == "true"
    assert resp.header("access-control-expose-headers") == "x-trace"
    assert "Origin" in resp.header_all("vary")
    assert len(resp.body) == 100


def test_other_origins_and_no_origin_pass_without_cors_fields_but_with_vary(edge: Edge) -> None:
    for headers in ([("origin", "https://evil.example")], []):
        resp = get(edge.port, "/json?n=100", host="cors.test", headers=headers)
        assert resp.status == 200
        assert resp.header("access-control-allow-origin") is None
        assert "Origin" in resp.header_all("vary")


def test_any_origin_without_credentials_is_star_and_echoes_methods(edge: Edge) -> None:
    resp = preflight(edge, "cors-any.test", "https://whoever.example", "PATCH", "x-a")
    assert resp.status == 204
    assert resp.header("access-control-allow-origin") == "*"
    assert resp.header("access-control-allow-methods") == "PATCH"
    assert resp.header("access-control-allow-headers") == "x-a"
    assert resp.header("access-control-allow-credentials") is None
    simple = get(edge.port, "/echo", host="cors-any.test", headers=[("origin", "https://x.example")])
    assert simple.header("access-control-allow-origin") == "*"
    assert "Origin" not in simple.header_all("vary")


def test_options_without_request_method_is_not_a_preflight(edge: Edge) -> None:
    resp = get(edge.port, "/echo", host="cors-any.test", method="OPTIONS",
               headers=[("origin", "https://x.example")])
    assert resp.status == 200 and resp.json()["method"] == "OPTIONS"
