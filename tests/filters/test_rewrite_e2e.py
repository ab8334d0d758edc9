"""strip_prefix and rewrite over real sockets: what path and Host the upstream receives."""

from __future__ import annotations

import json

from filters.conftest import Edge  # type: ignore[import-not-found]
from support.rawhttp import get


def upstream_view(edge: Edge, target: str, host: str, **kw: object) -> dict[str, object]:
    resp = get(edge.port, target, host=host, **kw)  # type: ignore[arg-type]
    assert resp.status == 200, resp
    view: dict[str, object] = json.loads(resp.body)
    return view


def test_strip_prefix_forwards_the_rest_and_records_the_prefix(edge: Edge) -> None:
    view = upstream_view(edge, "/api/users/7?full=1", "strip.test")
    assert view["target"] == "/users/7?full=1"
    assert edge.seen(json.dumps(view).encode())["x-forwarded-prefix"] == ["/api"]


def test_strip_prefix_of_the_whole_path_leaves_root(edge: Edge) -> None:
    assert upstream_view(edge, "/api", "strip.test")["target"] == "/"
    assert upstream_view(edge, "/api?x=1", "strip.test")["target"] == "/?x=1"


def test_strip_prefix_leaves_other_paths_and_replaces_a_client_prefix(edge: Edge) -> None:
    view = upstream_view(edge, "/other", "strip.test", headers=[("x-forwarded-prefix", "/evil")])
    assert view["target"] == "/other"
    assert edge.seen(json.dumps(view).encode())["x-forwarded-prefix"] == ["/evil"]
    view = upstream_view(edge, "/api/x", "strip.test", headers=[("x-forwarded-prefix", "/evil")])
    assert edge.seen(json.dumps(view).encode())["x-forwarded-prefix"] == ["/api"]


def test_prefix_rewrite(edge: Edge) -> None:
    assert upstream_view(edge, "/api/items?q=1", "rewrite-prefix.test")["target"] == \
        "/v2/items?q=1"
    assert upstream_view(edge, "/api", "rewrite-prefix.test")["target"] == "/v2"
    assert upstream_view(edge, "/apiary", "rewrite-prefix.test")["target"] == "/v2/ary"
    assert upstream_view(edge, "/else", "rewrite-prefix.test")["target"] == "/else"


def test_regex_rewrite_with_capture_groups(edge: Edge) -> None:
    assert upstream_view(edge, "/u/42/posts?page=2", "rewrite-regex.test")["target"] == \
        "/users/posts/42?page=2"
    # The whole path must match: a longer one is forwarded as it is.
    assert upstream_view(edge, "/u/42/posts/9", "rewrite-regex.test")["target"] == \
        "/u/42/posts/9"


def test_regex_rewrite_takes_linear_time_on_a_hostile_path(edge: Edge) -> None:
    """`([A-Za-z0-9_-]+/?)+` against 60 letters and a `!`: Python's backtracking `re` would
    try 2^60 ways (the gateway would never answer); RE2 fails it in one pass."""
    path = "/v1/users/" + "a" * 60 + "!"
    assert upstream_view(edge, path, "rewrite-evil.test")["target"] == path
    assert upstream_view(edge, "/v1/users/ab/cd", "rewrite-evil.test")["target"] == \
        "/users/cd"


def test_host_rewrite(edge: Edge) -> None:
    view = upstream_view(edge, "/x", "rewrite-host.test")
    seen = edge.seen(json.dumps(view).encode())
    assert seen["host"] == ["internal.example:8443"]
    assert seen["x-forwarded-host"] == ["rewrite-host.test"]  # what the client asked for
