"""The cache's config: defaults pinned, and each bad value refused at load with its key path."""

from __future__ import annotations

import pytest

from edgeward.cache.config import CacheConfig, FleetConfig, SharedConfig
from edgeward.config.text import load_text
from edgeward.filters.builtin.cache import CacheFilterConfig, KeyConfig
from edgeward.structs import ConfigError

BASE = """\
listen: 127.0.0.1:8080
TOP
upstreams:
  app: {targets: ["127.0.0.1:9"]}
routes:
  - match: {path_prefix: /}
    upstream: app
    filters: [{cache: FILTER}]
"""


def test_defaults() -> None:
    top = CacheConfig()
    assert (top.max_size, top.max_entry_size, top.prewarm_concurrency, top.fleet,
            top.shared) == (100 * 1024 * 1024, 1024 * 1024, 4, None, None)
    shared = SharedConfig()
    assert (shared.max_entry_size, shared.timeout, shared.prefix) == (
        64 * 1024, 0.020, "{edgeward:cache}")
    fleet = FleetConfig()
    assert (fleet.stream, fleet.window, fleet.node) == ("edgeward:cache:purge", 10_000, None)
    f = CacheFilterConfig()
    assert (f.default_ttl, f.heuristic, f.max_ttl, f.stale_while_revalidate,
            f.stale_if_error, f.max_entry_size, f.lock_timeout, f.purge_on, f.prewarm) == (
        0.0, False, 0.0, 0.0, 0.0, None, 5.0, [], None)
    k = KeyConfig()
    assert (k.method, k.query, k.headers, k.consumer) == (False, ["*"], [], False)


CASES = [
    ("", '{purge_on: [{path: "/u/{id}", keys: ["/v/{other}"]}]}',
     "routes[0].filters[0].cache.purge_on[0].keys[0]", "{other} is not in path"),
    ("", '{purge_on: [{path: "/u/{id}"}]}',
     "routes[0].filters[0].cache.purge_on[0].keys", "at least one of keys"),
    ("", '{purge_on: [{path: "u", keys: [/u]}]}',
     "routes[0].filters[0].cache.purge_on[0].path", "must start with /"),
    ("", "{stale_if_error: -1s}", "routes[0].filters[0].cache.stale_if_error", ""),
    ("", "{lock_timeout: 0s}", "routes[0].filters[0].cache.lock_timeout", "above 0"),
    ("", "{prewarm: {upstream: nowhere, host: a, paths: [/x]}}",
     "routes[0].filters[0].cache.prewarm.upstream", "no upstream named 'nowhere'"),
    ("", "{prewarm: {upstream: app, host: a, paths: [x]}}",
     "routes[0].filters[0].cache.prewarm.paths[0]", "must start with /"),
    ("cache: {fleet: {}}", "{}", "cache.fleet", "need a top-level redis"),
    ("cache: {max_size: 1MiB, max_entry_size: 2MiB}", "{}", "cache.max_entry_size",
     "must not exceed max_size"),
    ("redis: redis://127.0.0.1:1\ncache: {fleet: {node: 'a b'}}", "{}", "cache.fleet.node",
     "1-128 of"),
    ("cache: {shared: {}}", "{}", "cache.shared", "needs a top-level redis"),
    ("redis: redis://127.0.0.1:1\ncache: {shared: {timeout: 0s}}", "{}",
     "cache.shared.timeout", "above 0"),
    ("redis: redis://127.0.0.1:1\ncache: {shared: {prefix: ''}}", "{}",
     "cache.shared.prefix", "must not be empty"),
]


@pytest.mark.parametrize(("top", "filt", "path", "reason"), CASES)
def test_bad_values_are_refused_with_their_key_path(top: str, filt: str, path: str,
                                                    reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(BASE.replace("TOP", top).replace("FILTER", filt), "cache.yaml")
    text = str(info.value)
    assert path in text and reason in text, text
