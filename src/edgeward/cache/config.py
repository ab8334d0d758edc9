"""The top-level `cache:` section: the worker's store and the fleet's purge stream
(docs/cache.md). Routes turn caching on with the `cache` filter (edgeward.filters.builtin.cache).

    cache:
      max_size: 100MiB
      max_entry_size: 1MiB
      fleet: {stream: "edgeward:cache:purge", window: 10000, node: gw-eu-1}   # needs redis:
      shared: {max_entry_size: 64KiB, timeout: 20ms}                          # needs redis:
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from edgeward.values import Duration, Size, doc

# Varnish's default storage is `-s default,100m`; the store is per worker, bounded in bytes
# (body, fields and a fixed per-entry overhead).
DEFAULT_MAX_SIZE: Final = 100 * 1024 * 1024
# One response may take at most 1% of the default store, so a few large bodies cannot evict
# everything else (nginx and Varnish have no per-object cap by default; Fastly caps objects
# at 20 MB without streaming miss, Akamai at 1.8 GB: both are disk tiers, this is memory).
DEFAULT_MAX_ENTRY_SIZE: Final = 1024 * 1024
# The stream's key: one stream per fleet, named like the rate limiter's keys (edgeward:...).
DEFAULT_STREAM: Final = "edgeward:cache:purge"
# Entries kept (XADD MAXLEN ~): a worker that is away for more purges than this flushes its
# tier on return. 10,000 purges is hours of a busy CMS's publishing; Redis holds it in a
# few MB (Redis' own docs use MAXLEN ~ 1000 in examples; Kafka-style retention is longer).
DEFAULT_WINDOW: Final = 10_000
# Prewarm fetches in flight at once per worker (nginx's cache loader works in batches of
# loader_files = 100 files, but those are disk reads, not origin requests: kept small so a
# prewarm list never looks like a burst to the origin).
DEFAULT_PREWARM_CONCURRENCY: Final = 4
# The shared tier keeps small responses only: 64 KiB is Redis' own advice for values served
# at low latency (big values block its single thread), and nginx's proxy_buffers default is
# 8 x 4-8 KiB: an API answer fits; images and downloads stay in each worker's local tier.
DEFAULT_SHARED_MAX_ENTRY: Final = 64 * 1024
# A local miss waits at most this long for Redis before going upstream (the rate limiter's
# redis.timeout default is 50 ms for a decision that must be taken; a cache lookup is only an
# optimisation, so it gives up sooner: Envoy's rate limit filter times out at 20 ms).
DEFAULT_SHARED_TIMEOUT: Final = 0.020
# Every key of the shared tier starts with this; the hash tag keeps them in one slot on
# Redis Cluster (the purge scripts touch entries and index sets together).
DEFAULT_SHARED_PREFIX: Final = "{edgeward:cache}"
_NODE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


@dataclass(frozen=True, kw_only=True)
class FleetConfig:
    stream: str = field(default=DEFAULT_STREAM,
                        metadata=doc("the Redis Stream every worker appends purges to"))
    window: int = field(default=DEFAULT_WINDOW,
                        metadata=doc("entries kept (XADD MAXLEN ~); a worker that missed "
                                     "more flushes its cache"))
    node: str | None = field(
        default=None,
        metadata=doc("this gateway's consumer group name, stable across restarts (default "
                     "HOSTNAME-LISTEN-WORKER); each worker adds -WORKER"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.stream:
            problems.append(("stream", "must not be empty"))
        if self.window < 1:
            problems.append(("window", "must be at least 1"))
        if self.node is not None and _NODE.fullmatch(self.node) is None:
            problems.append(("node", "1-128 of A-Z a-z 0-9 _ . : -"))
        return problems


@dataclass(frozen=True, kw_only=True)
class SharedConfig:
    max_entry_size: Size = field(
        default=DEFAULT_SHARED_MAX_ENTRY,
        metadata=doc("larger responses stay in the worker's local tier only"))
    timeout: Duration = field(
        default=DEFAULT_SHARED_TIMEOUT,
        metadata=doc("how long a local miss waits for Redis; slower counts as a miss"))
    prefix: str = field(
        default=DEFAULT_SHARED_PREFIX,
        metadata=doc("start of every key; keep a {hash tag} on Redis Cluster"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.max_entry_size < 1:
            problems.append(("max_entry_size", "must be at least 1"))
        if not self.timeout > 0:
            problems.append(("timeout", "must be above 0"))
        if not self.prefix:
            problems.append(("prefix", "must not be empty"))
        return problems


@dataclass(frozen=True, kw_only=True)
class CacheConfig:
    max_size: Size = field(default=DEFAULT_MAX_SIZE,
                           metadata=doc("the worker's store, in bytes (LRU beyond)"))
    max_entry_size: Size = field(default=DEFAULT_MAX_ENTRY_SIZE,
                                 metadata=doc("larger responses are passed, not stored"))
    prewarm_concurrency: int = field(default=DEFAULT_PREWARM_CONCURRENCY,
                                     metadata=doc("prewarm fetches at once per worker"))
    fleet: FleetConfig | None = field(
        default=None,
        metadata=doc("fleet-wide purges over a Redis Stream (needs top-level redis:); "
                     "off: purges stay in the worker that got them"))
    shared: SharedConfig | None = field(
        default=None,
        metadata=doc("a shared tier in Redis beside each worker's (needs top-level redis:); "
                     "off: each worker caches alone"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.max_size < 1024:
            problems.append(("max_size", "must be at least 1KiB"))
        if self.max_entry_size > self.max_size:
            problems.append(("max_entry_size", "must not exceed max_size"))
        if self.prewarm_concurrency < 1:
            problems.append(("prewarm_concurrency", "must be at least 1"))
        return problems
