"""Compiling to snapshots; stateful objects survive a reload that leaves their config alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from edgeward.compose import Registry, compile_snapshot
from edgeward.config.text import load_text
from edgeward.http.fields import Headers
from edgeward.http.message import NO_BODY, RequestHead
from edgeward.structs import ConfigError

BASE = """
upstreams:
  a: {targets: ["127.0.0.1:1", "127.0.0.1:2"],
      circuit_breaker: {failure_rate: 0.5, min_requests: 4}}
  b: {targets: ["127.0.0.1:3"]}
routes:
  - {name: api, match: {path_prefix: /api}, upstream: a, rate_limit: {rate: 5/s, burst: 5}}
  - {name: rest, match: {path_prefix: /}, upstream: b}
"""


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def head(path: str, host: str = "example.com") -> RequestHead:
    return RequestHead("GET", path.encode(), path, host, host.encode(), Headers([]), NO_BODY,
                       "10.0.0.1", "rid")


def test_routes_match_by_longest_prefix(loop: asyncio.AbstractEventLoop) -> None:
    snap = compile_snapshot(load_text(BASE, "t"), loop, Registry())
    api = snap.match(head("/api/orders"))
    rest = snap.match(head("/other"))
    assert api is not None and api.name == "api"
    assert rest is not None and rest.name == "rest"
    assert api.cluster is not None and api.cluster.name == "a"


def test_unchanged_sections_keep_their_state_across_a_reload(
        loop: asyncio.AbstractEventLoop) -> None:
    registry = Registry()
    first = compile_snapshot(load_text(BASE, "t"), loop, registry)
    changed = BASE.replace('b: {targets: ["127.0.0.1:3"]}', 'b: {targets: ["127.0.0.1:4"]}')
    second = compile_snapshot(load_text(changed, "t"), loop, registry)
    assert second.clusters["a"] is first.clusters["a"]        # breaker window and pools kept
    assert second.routes[0].limiter is first.routes[0].limiter  # limiter buckets kept
    assert second.clusters["b"] is not first.clusters["b"]    # its targets changed
    limit_changed = BASE.replace("rate: 5/s", "rate: 6/s")
    third = compile_snapshot(load_text(limit_changed, "t"), loop, registry)
    assert third.routes[0].limiter is not second.routes[0].limiter


def test_a_failed_compile_leaves_the_registry_as_it_was(loop: asyncio.AbstractEventLoop) -> None:
    registry = Registry()
    first = compile_snapshot(load_text(BASE, "t"), loop, registry)
    bad = BASE + "  - {name: bad, match: {path_prefix: /b}, split: [{upstream: a, weight: 0}]}\n"
    with pytest.raises(ConfigError) as info:
        compile_snapshot(load_text(bad, "t"), loop, registry)
    assert any("routes[2].split" in line for line in info.value.lines())
    again = compile_snapshot(load_text(BASE, "t"), loop, registry)
    assert again.clusters["a"] is first.clusters["a"]


def test_reference_doc_matches_the_schema() -> None:
    from pathlib import Path

    from edgeward.config.reference import render

    doc = Path(__file__).resolve().parents[1] / "docs" / "config-reference.md"
    assert doc.read_text() == render(), (
        "docs/config-reference.md is stale: run "
        "`python -m edgeward.config.reference > docs/config-reference.md`")
