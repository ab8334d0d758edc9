"""The cache's I/O side in one worker: publishing purges to the fleet, reading the fleet's,
background revalidation (stale-while-revalidate) and prewarming, all as subrequests over the
data plane's pools (edgeward.proxy.subrequest).

One `CacheRuntime` per worker, kept by the registry across reloads: the composition root
configures it on every compile (tier bounds, the routes' cache filters and their prewarm
lists, the clusters in force); `Control` starts and stops its fleet reader.

Prewarming: each route's `prewarm.paths` are fetched when the route's cache filter is first
built (start, or a config change that made a new one) and again whenever a purge removes
one of them; at most `cache.prewarm_concurrency` prewarm fetches run at once per worker.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping
from typing import Any, Final

from edgeward.cache.config import SharedConfig
from edgeward.cache.fleet import Fleet
from edgeward.cache.key import variant, vary_names
from edgeward.cache.shared import SharedTier
from edgeward.cache.store import Entry, Store
from edgeward.cache.tier import ADMIN, STREAM, Tier, refreshed, storable, stored_fields, tags_of
from edgeward.filters.cache import Cache
from edgeward.filters.events import FilterEvents
from edgeward.http.message import RequestHead
from edgeward.proxy.subrequest import SubrequestError, fetch, make_head
from edgeward.ratelimit.redis_client import STORE_ERRORS

log = logging.getLogger("edgeward.cache")

# A background or prewarm fetch waits at most this long (nginx's proxy_read_timeout is 60s;
# these fetches hold no client, but a slot of the prewarm limit, so they are kept shorter).
FETCH_TIMEOUT: Final = 10.0
_REQUEST_FIELDS_DROPPED: Final = frozenset({"if-none-match", "if-modified-since", "host",
                                            "content-length", "transfer-encoding"})


class Prewarm:
    """One route's prewarm list: what to fetch, where, and which filter stores it."""

    __slots__ = ("cache", "upstream", "host", "paths")

    def __init__(self, cache: Cache, upstream: str, host: str, paths: tuple[str, ...]) -> None:
        self.cache = cache
        self.upstream = upstream
        self.host = host
        self.paths = paths


class PurgeResult:
    """What an admin purge did: entries removed here and in the shared tier, the stream
    entry, and what failed (Redis errors, as text)."""

    __slots__ = ("removed", "shared_removed", "stream_id", "error", "shared_error")

    def __init__(self) -> None:
        self.removed = 0
        self.shared_removed = 0
        self.stream_id: str | None = None
        self.error: str | None = None           # not published to the fleet
        self.shared_error: str | None = None    # not removed from the shared tier


class CacheRuntime:
    def __init__(self, events: FilterEvents) -> None:
        self.tier = Tier(Store(0, 0), events)
        self.tier.shell = self
        self.clusters: Mapping[str, Any] = {}
        self.prewarms: list[Prewarm] = []
        self.fleet: Fleet | None = None
        self.redis: Any = None      # the gateway's Redis client when the fleet is configured
        self.node = ""
        self.prewarm_slots = asyncio.Semaphore(1)
        self.prewarm_concurrency = 1
        self.prewarmed = 0           # prewarm fetches stored
        self._tasks: set[asyncio.Task[Any]] = set()
        self._outbox: list[tuple[str, str]] = []
        self._sending = False

    # configuration ----------------------------------------------------------------------------
    def configure(self, max_size: int, max_entry: int, prewarm_concurrency: int) -> None:
        store = self.tier.store
        store.max_bytes, store.max_entry = max_size, max_entry
        while store.size > max_size and store.entries:
            store.remove(next(iter(store.entries)))
        if self.prewarm_concurrency != prewarm_concurrency:
            self.prewarm_concurrency = prewarm_concurrency
            self.prewarm_slots = asyncio.Semaphore(prewarm_concurrency)

    def set_routes(self, caches: list[Cache], prewarms: list[Prewarm]) -> None:
        """The compiled config's cache filters: background revalidation wired in; prewarm
        lists of filters new to this config fetched now."""
        for cache in caches:
            cache.revalidate = self.revalidate_later
        known = {id(p.cache) for p in self.prewarms}
        self.prewarms = prewarms
        for p in prewarms:
            if id(p.cache) not in known:
                for path in p.paths:
                    self._spawn(self._prewarm(p, path))

    @property
    def shared(self) -> SharedTier | None:
        shared = self.tier.shared
        return shared if isinstance(shared, SharedTier) else None

    def set_shared(self, client: Any, config: SharedConfig | None) -> None:
        """Use (or stop using) the shared tier; a new SharedTier when its settings or the
        Redis client changed."""
        if config is None or client is None:
            self.tier.shared = None
            return
        current = self.shared
        if (current is not None and current.client is client
                and current.prefix == config.prefix and current.timeout == config.timeout
                and current.max_entry == config.max_entry_size):
            return
        self.tier.shared = SharedTier(client, self.tier.events, prefix=config.prefix,
                                      max_entry=config.max_entry_size, timeout=config.timeout)

    def set_fleet(self, fleet: Fleet | None, node: str) -> None:
        self.fleet = fleet
        self.node = node

    # purges (Tier's shell) ------------------------------------------------------------------
    def published(self, kind: str, arg: str) -> None:
        """A purge applied here by a rule: out of the shared tier, and to the stream, in
        order, batched."""
        if self.shared is not None:
            self._spawn(self._purge_shared(self.shared, kind, arg))
        if self.fleet is None:
            return
        self._outbox.append((kind, arg))
        if not self._sending:
            self._sending = True
            self._spawn(self._send())

    async def _send(self) -> None:
        try:
            while self._outbox and self.fleet is not None:
                batch, self._outbox = self._outbox, []
                try:
                    await self.fleet.publish(batch, self.node)
                except Exception as exc:  # noqa: BLE001 - logged; local purge stands
                    log.error("cache purges not published to the fleet: %s", exc)
        finally:
            self._sending = False

    async def _purge_shared(self, shared: SharedTier, kind: str, arg: str) -> None:
        try:
            await shared.purge(kind, arg)
        except STORE_ERRORS as exc:
            log.error("cache purge %s %r not applied to the shared tier: %s", kind, arg, exc)

    def purged(self, entries: list[Entry]) -> None:
        if not entries or not self.prewarms:
            return
        gone = {e.base for e in entries}
        for p in self.prewarms:
            for path in p.paths:
                if p.cache.key.base(make_head("GET", path, p.host)) in gone:
                    self._spawn(self._prewarm(p, path))

    async def purge(self, purges: list[tuple[str, str]]) -> PurgeResult:
        """The admin API's purge: applied here, removed from the shared tier, then appended
        to the stream (both awaited: when it returns, no gateway finds the entries in Redis,
        and every other worker will drop its local copies once it reads the stream)."""
        result = PurgeResult()
        for kind, arg in purges:
            result.removed += self.tier.purge(kind, arg, ADMIN, publish=False)
        if self.shared is not None:
            try:
                for kind, arg in purges:
                    result.shared_removed += await self.shared.purge(kind, arg)
            except Exception as exc:  # noqa: BLE001 - a Redis error: reported to the caller
                result.shared_error = str(exc) or type(exc).__name__
        if self.fleet is not None:
            try:
                result.stream_id = await self.fleet.publish(purges, self.node)
            except Exception as exc:  # noqa: BLE001 - a Redis error: reported to the caller
                result.error = str(exc) or type(exc).__name__
        return result

    def from_stream(self, kind: str, arg: str) -> None:
        self.tier.purge(kind, arg, STREAM)

    def flush_after_gap(self) -> None:
        self.tier.purge("flush", "", STREAM)

    # subrequests ----------------------------------------------------------------------------
    def revalidate_later(self, cache: Cache, req: RequestHead, entry: Entry) -> None:
        upstream = req.upstream
        cluster = self.clusters.get(upstream) if upstream is not None else None
        if cluster is None:
            return
        fields = [(n, v) for n, v in req.headers if n.lower() not in _REQUEST_FIELDS_DROPPED]
        if entry.etag is not None:
            fields.append(("if-none-match", entry.etag))
        elif entry.last_modified is not None:
            fields.append(("if-modified-since", entry.last_modified))
        head = make_head("GET", req.target.decode("latin-1"), req.authority.decode("latin-1"),
                         fields)
        head.consumer = req.consumer
        fut = asyncio.get_running_loop().create_future()
        self.tier.inflight[entry.key] = fut
        self._spawn(self._fetch_into(cache, cluster, head, entry, fut))

    async def _prewarm(self, p: Prewarm, path: str) -> None:
        cluster = self.clusters.get(p.upstream)
        if cluster is None:
            return
        async with self.prewarm_slots:
            head = make_head("GET", path, p.host)
            if await self._fetch_into(p.cache, cluster, head, None, None):
                self.prewarmed += 1

    async def _fetch_into(self, cache: Cache, cluster: Any, head: RequestHead,
                          stale: Entry | None, fut: asyncio.Future[None] | None) -> bool:
        """Fetch `head` and store the answer (a 304 refreshes `stale`); True when stored."""
        tier = self.tier
        try:
            got = await fetch(cluster, head, timeout=FETCH_TIMEOUT,
                              max_body=min(cache.max_entry, tier.store.max_entry))
        except SubrequestError as exc:
            log.info("cache fetch of %s failed: %s", head.target.decode("latin-1"), exc)
            return False
        finally:
            if fut is not None and stale is not None:
                if tier.inflight.get(stale.key) is fut:
                    del tier.inflight[stale.key]
                fut.set_result(None)
        now, wall = tier.clock(), tier.wall()
        headers = got.head.headers
        if got.status == 304 and stale is not None:
            fresh_copy = refreshed(stale, headers, cache.policy, now, wall)
            if tier.store.put(fresh_copy) and self.shared is not None:
                self.shared.write(fresh_copy, "")
            return True
        fresh = storable(got.status, headers, "authorization" in head.headers, cache.policy,
                         wall)
        if fresh is None:
            return False
        base = cache.key.base(head)
        primary = cache.key.primary(head, base)
        vary = vary_names(headers.get("vary"))
        tags = tags_of(headers)
        fields = [(n, v) for n, v in stored_fields(headers)
                  if n.lower() not in (b"cache-tag", b"surrogate-key")]
        entry = Entry(variant(primary, head, vary), primary, base, got.status, fields, got.body,
                      fresh, now, headers.get("etag"), headers.get("last-modified"), tags, vary)
        if not tier.store.put(entry):
            return False
        if self.shared is not None:
            self.shared.write(entry, "")
        return True

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # compiled outside a loop (config checks): nothing to fetch
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # views ------------------------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        store = self.tier.store
        fleet = self.fleet
        shared = self.shared
        return {
            "entries": len(store), "size": store.size, "max_size": store.max_bytes,
            "evictions": store.evictions, "purges_applied": self.tier.applied,
            "prewarmed": self.prewarmed,
            "fleet": None if fleet is None else {
                "stream": fleet.stream, "group": fleet.group, "connected": fleet.connected,
                "applied_id": fleet.applied_id, "window_flushes": fleet.flushes},
            "shared": None if shared is None else {
                "prefix": shared.prefix, "max_entry_size": shared.max_entry,
                "timeout": shared.timeout, "writes_in_flight": len(shared._writes)},
        }


def default_node(listen: str, worker_id: int) -> str:
    """A worker's consumer group when `cache.fleet.node` is not set: host name, first
    listener and worker number, stable across restarts of the same worker."""
    return f"{socket.gethostname()}-{listen}-{worker_id}"
