"""`cache`: answers GET and HEAD from the worker's cache, stores what the origin lets it, and
invalidates after writes (docs/cache.md).

Per request, in `on_request`:
- not GET/HEAD: passes; a successful unsafe request then purges its target (RFC 9111 §4.4)
  and whatever the route's `purge_on` rules name, fleet-wide;
- a fresh entry: a local reply with the stored head and body (`X-Cache: HIT`, `Age`); the
  upstream side never runs. A matching If-None-Match / If-Modified-Since gets a 304;
- a stale entry within stale-while-revalidate: served (`STALE`), revalidated in the background;
- a stale entry otherwise: the request goes on with the entry's validators; a 304 refreshes
  the entry and the client gets it (`REVALIDATED`); an origin error within stale-if-error
  gets the stale entry instead (`STALE`);
- no entry: when another request is already fetching the same key, this one waits for it
  (up to `lock_timeout`) and is then answered from the cache (coalescing, nginx
  proxy_cache_lock); otherwise it goes upstream (`MISS`) and its response, when storable,
  streams into the store part by part as it streams to the client;
- with `cache.shared`, a local miss first asks the shared tier in Redis (bounded by
  `cache.shared.timeout`); a copy found there is stored locally and served (`X-Cache: HIT`
  with `X-Cache-Tier: shared`); what the local tier stores is copied there in the background.
Responses the cache did not serve or store get `X-Cache: BYPASS`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ClassVar, Final

from edgeward.cache.key import KeySpec, variant, vary_names
from edgeward.cache.policy import (
    FRESH,
    STALE_REVALIDATE,
    RoutePolicy,
    current_age,
    not_modified,
    serves_on_error,
    usability,
)
from edgeward.cache.rules import PurgeRule
from edgeward.cache.store import Entry
from edgeward.cache.tier import (
    RULE,
    TAG_FIELDS,
    Shared,
    Tier,
    refreshed,
    storable,
    stored_fields,
    tags_of,
)
from edgeward.filters.api import ORDER_CACHE, Filter, Reply, Request, RequestResult, Response
from edgeward.filters.events import CACHE as REQUESTS
from edgeward.filters.events import CACHE_SERVED_BYTES as SERVED_BYTES
from edgeward.filters.events import CACHE_STORED_BYTES as STORED_BYTES
from edgeward.http.message import NO_BODY, ResponseHead

HIT: Final = b"HIT"
MISS: Final = b"MISS"
STALE: Final = b"STALE"
BYPASS: Final = b"BYPASS"
REVALIDATED: Final = b"REVALIDATED"
_NAMES: Final = {HIT: "HIT", MISS: "MISS", STALE: "STALE", BYPASS: "BYPASS",
                 REVALIDATED: "REVALIDATED"}

_SLOT: Final = "cache"
_READS: Final = frozenset({"GET", "HEAD"})
_UNSAFE: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CONDITIONALS: Final = ("if-none-match", "if-modified-since")
# Fields a 304 to the client carries from the stored response (RFC 9110 §15.4.5).
_NOT_MODIFIED_FIELDS: Final = frozenset({b"cache-control", b"content-location", b"date",
                                         b"etag", b"expires", b"vary", b"last-modified"})


class Pending:
    """One request's cache state between its phases (req.vars)."""

    __slots__ = ("label", "base", "primary", "stale", "storing", "parts", "size", "leader",
                 "flight", "serve", "unsafe", "authorized")

    def __init__(self, label: bytes, base: str = "", primary: str = "") -> None:
        self.label = label
        self.base = base
        self.primary = primary
        self.stale: Entry | None = None     # the entry being revalidated
        self.storing: Entry | None = None   # the entry the response fills (body pending)
        self.parts: list[bytes] = []
        self.size = 0
        self.leader: asyncio.Future[None] | None = None  # others wait on this fetch
        self.flight = ""                    # ... under this key
        self.serve: bytes | None = None     # the body of a stored response sent instead
        self.unsafe = False                 # a write: invalidate when it succeeds
        self.authorized = False


class Cache(Filter):
    order: ClassVar[int] = ORDER_CACHE

    def __init__(self, *, tier: Tier, key: KeySpec, policy: RoutePolicy, route_max_entry: int,
                 lock_timeout: float, rules: tuple[PurgeRule, ...]) -> None:
        self.name = "cache"
        self.tier = tier
        self.key = key
        self.policy = policy
        self.max_entry = route_max_entry
        self.lock_timeout = lock_timeout
        self.rules = rules
        # Background revalidation (stale-while-revalidate), set by the runtime when it can
        # make subrequests: (filter, request, entry) -> None, never waits.
        self.revalidate: Callable[[Cache, Request, Entry], None] | None = None
        # (upstream, host, paths) of the route's prewarm list, read by the runtime.
        self.prewarm: tuple[str, str, tuple[str, ...]] | None = None

    # request ------------------------------------------------------------------------------
    def on_request(self, req: Request) -> RequestResult:
        method = req.method
        if method not in _READS or req.upgrade is not None:
            p = Pending(BYPASS)
            p.unsafe = method in _UNSAFE
            req.vars[_SLOT] = p
            return None
        spec = self.key
        base = spec.base(req)
        primary = spec.primary(req, base)
        store = self.tier.store
        vary = store.vary.get(primary)
        key = primary if vary is None else variant(primary, req, vary)
        entry = store.get(key) if vary is not None else None
        if entry is not None:
            return self._stored(req, entry, base, primary)
        flight = self.tier.inflight.get(key)
        if flight is not None and method == "GET":
            return self._follow(req, flight, base, primary)
        return self._miss(req, base, primary, key)

    def _stored(self, req: Request, entry: Entry, base: str, primary: str,
                shared: bool = False) -> RequestResult:
        now = req.started
        use = usability(entry.fresh, entry.stored_at, now)
        if use == FRESH:
            return self._hit(req, entry, now, HIT, shared)
        if use == STALE_REVALIDATE:
            revalidate = self.revalidate
            if revalidate is not None and entry.key not in self.tier.inflight:
                revalidate(self, req, entry)
            return self._hit(req, entry, now, STALE, shared)
        p = Pending(MISS, base, primary)
        p.authorized = "authorization" in req.headers
        if req.method == "GET":
            p.stale = entry
            headers = req.headers
            if not any(n in headers for n in _CONDITIONALS):
                if entry.etag is not None:
                    headers.set("if-none-match", entry.etag)
                elif entry.last_modified is not None:
                    headers.set("if-modified-since", entry.last_modified)
        req.vars[_SLOT] = p
        return None

    def _miss(self, req: Request, base: str, primary: str, key: str) -> RequestResult:
        p = Pending(MISS, base, primary)
        headers = req.headers
        p.authorized = "authorization" in headers
        if req.method == "GET":
            fut = asyncio.get_running_loop().create_future()
            self.tier.inflight[key] = fut
            p.leader, p.flight = fut, key
        req.vars[_SLOT] = p
        shared = self.tier.shared
        if shared is not None:
            return self._look_shared(req, shared, p)
        if req.method == "GET":
            _drop_conditionals(req)
        return None

    async def _look_shared(self, req: Request, shared: Shared, p: Pending) -> Reply | None:
        """A local miss asks the shared tier (bounded; a failure is a miss). Whoever follows
        this request's fetch waits for the lookup too, then finds the copy locally."""
        entry = await shared.lookup(p.primary, req, req.route_name)
        if entry is None or not self.tier.store.put(entry):
            if req.method == "GET":
                _drop_conditionals(req)
            return None
        self._release(p)
        del req.vars[_SLOT]
        now = self.tier.clock()
        if usability(entry.fresh, entry.stored_at, now) == FRESH:
            return self._hit(req, entry, now, HIT, True)
        result = self._stored(req, entry, p.base, p.primary, True)
        return result if isinstance(result, Reply) else None

    async def _follow(self, req: Request, flight: asyncio.Future[None], base: str,
                      primary: str) -> Reply | None:
        try:
            await asyncio.wait_for(asyncio.shield(flight), self.lock_timeout)
        except TimeoutError:
            pass
        store = self.tier.store
        vary = store.vary.get(primary)
        entry = store.get(variant(primary, req, vary)) if vary is not None else None
        now = self.tier.clock()
        if entry is not None and usability(entry.fresh, entry.stored_at, now) == FRESH:
            return self._hit(req, entry, now, HIT)
        p = Pending(MISS, base, primary)
        p.authorized = "authorization" in req.headers
        req.vars[_SLOT] = p
        return None

    def _hit(self, req: Request, entry: Entry, now: float, label: bytes,
             shared: bool = False) -> Reply:
        age = str(int(current_age(entry.fresh, entry.stored_at, now))).encode()
        inm, ims = _conditionals(req)
        if (inm is not None or ims is not None) and not_modified(
                entry.etag, entry.last_modified, inm, ims):
            reply = Reply(304)
            reply.fields = [(n, v) for n, v in entry.fields
                            if n.lower() in _NOT_MODIFIED_FIELDS]
            reply.fields.append((b"age", age))
            reply.fields.append((b"x-cache", label))
            if shared:
                reply.fields.append((b"x-cache-tier", b"shared"))
        else:
            body = entry.body
            reply = Reply(entry.status)
            reply.body = body
            # The stored head as written once, with this answer's Age and X-Cache lines.
            head = ResponseHead(entry.status, None, len(body), entry.wire)
            if shared:
                head.append_block([(b"age", age), (b"x-cache", label),
                                   (b"x-cache-tier", b"shared")],
                                  b"age: " + age + b"\r\nx-cache: " + label
                                  + b"\r\nx-cache-tier: shared\r\n")
            else:
                head.append_block([(b"age", age), (b"x-cache", label)],
                                  b"age: " + age + b"\r\nx-cache: " + label + b"\r\n")
            reply.head = head
            self.tier.events.count(SERVED_BYTES, req.route_name, "", "", len(body))
        self.tier.events.count(REQUESTS, req.route_name, _NAMES[label])
        return reply

    # response -----------------------------------------------------------------------------
    def on_response(self, req: Request, resp: Response) -> None:
        p = req.vars.get(_SLOT)
        if not isinstance(p, Pending):
            return  # the request did not pass this filter (an earlier one replied)
        status = resp.status
        if p.unsafe:
            if 200 <= status < 400:
                self._invalidate(req)
        elif p.stale is not None and self._answer_stale(req, resp, p):
            pass
        elif p.label == MISS and req.method == "GET":
            self._begin_store(req, resp, p)
        resp.headers.append(b"x-cache", p.label)
        self.tier.events.count(REQUESTS, req.route_name, _NAMES[p.label])

    def _answer_stale(self, req: Request, resp: Response, p: Pending) -> bool:
        """A revalidation's answer: 304 refreshes the entry and answers with it; an error
        within stale-if-error answers with the stale entry; anything else is a new response."""
        entry = p.stale
        assert entry is not None
        tier = self.tier
        now = tier.clock()
        status = resp.status
        if status == 304:
            entry = refreshed(entry, resp.headers, self.policy, now, tier.wall())
            if tier.store.put(entry) and tier.shared is not None:
                tier.shared.write(entry, req.route_name)
            p.label = REVALIDATED
        elif status >= 500 and serves_on_error(entry.fresh, entry.stored_at, now):
            p.label = STALE
        else:
            return False
        fields = list(entry.fields)
        fields.append((b"age", str(int(current_age(entry.fresh, entry.stored_at, now))).encode()))
        resp.reset(entry.status, fields, len(entry.body) if entry.body else NO_BODY)
        p.serve = entry.body
        return True

    def _begin_store(self, req: Request, resp: Response, p: Pending) -> None:
        headers = resp.headers
        length = resp.body_length
        if length > self.max_entry or not self.tier.store.fits(max(length, 0)):
            p.label = BYPASS
            return
        tier = self.tier
        fresh = storable(resp.status, headers, p.authorized, self.policy, tier.wall())
        if fresh is None:
            p.label = BYPASS
            return
        tags = tags_of(headers)
        for name in TAG_FIELDS:
            if headers.first(name) is not None:
                headers.remove(name.decode())
        vary = vary_names(headers.get("vary"))
        key = variant(p.primary, req, vary)
        p.storing = Entry(key, p.primary, p.base, resp.status, stored_fields(headers), b"",
                          fresh, tier.clock(), headers.get("etag"),
                          headers.get("last-modified"), tags, vary)

    def on_response_body(self, req: Request, resp: Response, data: bytes, end: bool) -> bytes:
        p = req.vars.get(_SLOT)
        if not isinstance(p, Pending):
            return data
        serve = p.serve
        if serve is not None:
            return serve if end else b""
        storing = p.storing
        if storing is not None:
            if data:
                p.parts.append(data)
                p.size += len(data)
                if p.size > self.max_entry:
                    p.storing, p.parts = None, []
            if end:
                self._commit(req, p, storing)
        return data

    def _commit(self, req: Request, p: Pending, partial: Entry) -> None:
        if p.storing is None:
            return
        p.storing = None
        body = b"".join(p.parts)
        p.parts = []
        entry = Entry(partial.key, partial.primary, partial.base, partial.status,
                      partial.fields, body, partial.fresh, partial.stored_at, partial.etag,
                      partial.last_modified, partial.tags, partial.vary)
        tier = self.tier
        if tier.store.put(entry):
            tier.events.count(STORED_BYTES, req.route_name, "", "", len(body))
            if tier.shared is not None:
                tier.shared.write(entry, req.route_name)

    def on_done(self, req: Request, resp: Response | None) -> None:
        p = req.vars.get(_SLOT)
        if isinstance(p, Pending):
            self._release(p)

    def _release(self, p: Pending) -> None:
        """Wake the requests waiting on this one's fetch."""
        fut = p.leader
        if fut is not None:
            p.leader = None
            inflight = self.tier.inflight
            if inflight.get(p.flight) is fut:
                del inflight[p.flight]
            if not fut.done():
                fut.set_result(None)

    # invalidation -------------------------------------------------------------------------
    def _invalidate(self, req: Request) -> None:
        tier = self.tier
        tier.invalidate_target(req.host, req.path, RULE)
        for rule in self.rules:
            for kind, arg in rule.targets(req):
                tier.purge(kind, arg, RULE)


def _drop_conditionals(req: Request) -> None:
    """A miss fills the cache: the whole response is asked for, the client's conditional
    answered from it."""
    headers = req.headers
    for name in _CONDITIONALS:
        if name in headers:
            headers.remove(name)


def _conditionals(req: Request) -> tuple[str | None, str | None]:
    """If-None-Match and If-Modified-Since, in one scan of the request's fields (no index
    built: a hit reads nothing else of them)."""
    inm: str | None = None
    ims: str | None = None
    for name, value in req.headers.fields:
        size = len(name)
        if size == 13 and inm is None and name.lower() == b"if-none-match":
            inm = value.decode("latin-1")
        elif size == 17 and ims is None and name.lower() == b"if-modified-since":
            ims = value.decode("latin-1")
    return inm, ims
