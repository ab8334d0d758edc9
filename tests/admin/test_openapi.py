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
