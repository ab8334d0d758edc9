"""The worker's cache: the local store, the fetches in flight (coalescing), purges, and how a
response becomes an entry. One per worker, kept across reloads by the registry.

Purges arrive from three places, all through `purge(kind, arg, origin)`: the admin API, the
routes' invalidation rules (and RFC 9111 §4.4: a successful unsafe request invalidates its
target) and the fleet stream. Local purges are applied at once and handed to the `Fleet`
(edgeward.cache.fleet) to publish; purges read from the stream are applied only. Whatever a
purge removed is handed to the prewarmers, which fetch their listed keys again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from edgeward.cache.key import base_of
from edgeward.cache.policy import Freshness, RoutePolicy, freshness, parse_directives, refusal
from edgeward.cache.store import Entry, Store
from edgeward.http.fields import Headers
from edgeward.http.message import RequestHead

if TYPE_CHECKING:  # the filters package imports the cache filter, which imports this
    from edgeward.filters.events import FilterEvents

# Purge kinds, as the admin API and the stream name them.
KEY: Final = "key"
PREFIX: Final = "prefix"
TAG: Final = "tag"
FLUSH: Final = "flush"
KINDS: Final = (KEY, PREFIX, TAG, FLUSH)
# Where a purge came from (the `source` label of edgeward_cache_purges_total).
ADMIN: Final = "admin"
RULE: Final = "rule"
STREAM: Final = "stream"
# edgeward.filters.events.CACHE_PURGE: (kind, source) -> edgeward_cache_purges_total
PURGE_FAMILY: Final = "cache_purge"


# Fields never stored with an entry: the cache's own, and the hop-by-hop ones codecs drop.
SKIPPED: Final = frozenset({b"age", b"x-cache", b"connection", b"keep-alive",
                            b"transfer-encoding", b"content-length", b"proxy-connection",
                            b"te", b"trailer", b"upgrade"})
TAG_FIELDS: Final = (b"cache-tag", b"surrogate-key")
# Fields a 304 updates in the stored response (RFC 9111 §4.3.4: all but these few; the
# ones that matter for freshness and validation are enough here).
UPDATED_BY_304: Final = frozenset({b"cache-control", b"date", b"expires", b"etag",
                                   b"last-modified", b"age"})


class Shell(Protocol):
    """What the tier asks of the I/O side (edgeward.cache.runtime)."""

    def published(self, kind: str, arg: str) -> None: ...

    def purged(self, entries: list[Entry]) -> None: ...


class Shared(Protocol):
    """The shared tier in Redis, when configured (edgeward.cache.shared.SharedTier)."""

    async def lookup(self, primary: str, req: RequestHead, route: str) -> Entry | None: ...

    def write(self, entry: Entry, route: str) -> None: ...


class Tier:
    __slots__ = ("store", "inflight", "events", "shell", "clock", "wall", "applied", "shared")

    def __init__(self, store: Store, events: FilterEvents,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.store = store
        self.inflight: dict[str, asyncio.Future[None]] = {}
        self.events = events
        self.shell: Shell | None = None
        self.clock = clock
        self.wall = wall
        self.applied = 0  # purges applied here, from anywhere
        self.shared: Shared | None = None  # cache.shared: looked in after a local miss

    # purges -------------------------------------------------------------------------------
    def purge(self, kind: str, arg: str, source: str, publish: bool = True) -> int:
        """Apply a purge here; publish it to the fleet unless it came from the stream (or
        the caller publishes it itself: `publish` False)."""
        removed = self.apply(kind, arg)
        self.events.count(PURGE_FAMILY, kind, source)
        shell = self.shell
        if shell is not None:
            if publish and source != STREAM:
                shell.published(kind, arg)
            shell.purged(removed)
        return len(removed)

    def apply(self, kind: str, arg: str) -> list[Entry]:
        store = self.store
        self.applied += 1
        if kind == KEY:
            return store.purge_base(arg)
        if kind == PREFIX:
            return store.purge_prefix(arg)
        if kind == TAG:
            return store.purge_tag(arg)
        if kind == FLUSH:
            return store.flush()
        raise ValueError(f"unknown purge kind {kind!r}")

    def invalidate_target(self, host: str, path: str, source: str) -> None:
        """RFC 9111 §4.4: every stored response for the path, whatever its query."""
        self.purge(KEY, base_of(host, path, ""), source)
        self.purge(PREFIX, base_of(host, path, "") + "?", source)


def tags_of(headers: Headers) -> tuple[str, ...]:
    """Cache-Tag (comma-separated, Cloudflare) and Surrogate-Key (space-separated, Fastly)."""
    found: list[str] = []
    for name, value in headers.fields:
        lowered = name.lower()
        if lowered == b"cache-tag":
            found.extend(t.strip() for t in value.decode("latin-1").split(","))
        elif lowered == b"surrogate-key":
            found.extend(value.decode("latin-1").split())
    return tuple(sorted({t for t in found if t}))


def stored_fields(headers: Headers) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in headers.fields if n.lower() not in SKIPPED]


def storable(status: int, headers: Headers, authorized: bool, policy: RoutePolicy,
             wall: float) -> Freshness | None:
    """The freshness of a response the cache may store, or None when it may not (or when it
    could never be used: no lifetime and no validator)."""
    directives = parse_directives(headers.get("cache-control"))
    if refusal(status, directives, authorized, headers.get("vary"),
               "set-cookie" in headers) is not None:
        return None
    fresh = freshness(status, directives, headers.get("date"), headers.get("expires"),
                      headers.get("age"), headers.get("last-modified"), policy, wall)
    if fresh.lifetime <= 0.0 and "etag" not in headers and "last-modified" not in headers:
        return None
    return fresh


def refreshed(entry: Entry, headers: Headers, policy: RoutePolicy, now: float,
              wall: float) -> Entry:
    """The entry a 304 revalidated: its fields updated from the 304's, fresh again."""
    updates = [(n, v) for n, v in headers.fields if n.lower() in UPDATED_BY_304
               and n.lower() != b"age"]
    names = {n.lower() for n, _ in updates}
    fields = [(n, v) for n, v in entry.fields if n.lower() not in names] + updates
    merged = Headers(fields)
    fresh = freshness(entry.status, parse_directives(merged.get("cache-control")),
                      merged.get("date"), merged.get("expires"), headers.get("age"),
                      merged.get("last-modified"), policy, wall)
    return Entry(entry.key, entry.primary, entry.base, entry.status, fields, entry.body,
                 fresh, now, merged.get("etag"), merged.get("last-modified"), entry.tags,
                 entry.vary)
