"""The OpenAPI document and the routing table describe the same API."""

from __future__ import annotations

from typing import Any

from edgeward.admin.openapi import OPENAPI
from edgeward.admin.server import AdminServer

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


class _NoBackend:
    """The routing table does not depend on the backend; nothing here is ever called."""


def documented() -> set[tuple[str, str]]:
    return {(path, method.upper())
            for path, ops in OPENAPI["paths"].items() for method in ops if method in METHODS}


def test_openapi_covers_exactly_the_served_routes() -> None:
    served = AdminServer(_NoBackend(), token=None).routes()  # type: ignore[arg-type]
    assert documented() == served


def test_every_operation_is_complete_and_posts_declare_the_token() -> None:
    ids = []
    for path, ops in OPENAPI["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["responses"], (path, method)
            ids.append(op["operationId"])
            if method == "post":
                assert op["security"] == [{"bearer": []}], path
                assert "401" in op["responses"], path
    assert len(ids) == len(set(ids))
    assert OPENAPI["openapi"] == "3.1.0"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_reference_resolves() -> None:
    refs = _refs(OPENAPI)
    assert refs
    for ref in refs:
        node: Any = OPENAPI
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict), ref


ROUTES_CONFIG = """\
listen: 127.0.0.1:1
upstreams:
  app: {targets: ["127.0.0.1:9"]}
filters:
  web-cors: {cors: {allow_origins: ["https://app.example"]}}
routes:
  - name: api
    match: {path_prefix: /api}
    upstream: app
    rate_limit: {rate: 10/s, burst: 5}
    filters: [web-cors, {strip_prefix: /api}, {ip: {deny: [10.6.6.0/24]}}]
  - {name: ping, match: {path: /ping}, respond: {body: pong}}
"""


def _routes_view() -> list[dict[str, Any]]:
    import asyncio
    from types import SimpleNamespace

    from edgeward.control import Control
    from edgeward.runtime import ConfigRuntime

    loop = asyncio.new_event_loop()
    try:
        runtime = ConfigRuntime(ROUTES_CONFIG, "<test>", loop)
        return Control.routes_view(SimpleNamespace(runtime=runtime))  # type: ignore[arg-type]
    finally:
        loop.close()


def test_routes_output_has_exactly_the_documented_members() -> None:
    schemas = OPENAPI["components"]["schemas"]
    route_keys = set(schemas["Route"]["properties"])
    filter_keys = set(schemas["RouteFilter"]["properties"])
    for route in _routes_view():
        assert set(route) == route_keys
        assert set(schemas["Route"]["required"]) <= set(route)
        for f in route["filters"]:
            assert set(f) == filter_keys


def test_routes_output_lists_each_chain_in_run_order() -> None:
    api, ping = _routes_view()
    assert [(f["name"], f["kind"]) for f in api["filters"]] == [
        ("web-cors", "cors"), ("ip", "ip"), ("rate_limit", "rate_limit"),
        ("strip_prefix", "strip_prefix")]
    assert [f["order"] for f in api["filters"]] == sorted(f["order"] for f in api["filters"])
    assert ping["filters"] == [{"name": "respond", "kind": "respond", "order": 1000}]
    assert ping["respond"]["body_bytes"] == 4 and ping["upstream"] is None
