"""The governance built-ins a route's own keys compile to: body limit, rate limit, concurrency
limit and traffic split. They are filters like any other, on the public API, in a fixed order:

    max_body_size (ORDER_BODY_LIMIT) -> rate_limit (ORDER_RATE_LIMIT) ->
    max_concurrent (ORDER_CONCURRENCY) -> split (ORDER_SPLIT, last: it chooses the upstream)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import ClassVar, Final

from edgeward.auth.consumer import Consumer
from edgeward.filters.api import (
    ORDER_CONCURRENCY,
    ORDER_RATE_LIMIT,
    ORDER_SPLIT,
    Filter,
    Reply,
    Request,
    RequestResult,
    Response,
)
from edgeward.filters.subset import Chain as SubsetChain
from edgeward.ratelimit.concurrency import ConcurrencyLimiter
from edgeward.ratelimit.decision import Decision, response_fields, response_headers
from edgeward.ratelimit.keys import KeySpec
from edgeward.ratelimit.limiter import Limiter, LocalLimiter
from edgeward.routing.split import TrafficSplit

log = logging.getLogger("edgeward.ratelimit")

# Before everything else: a body the route refuses is refused before any work is done for it.
ORDER_BODY_LIMIT: Final = 50


class BodyLimit(Filter):
    """`max_body_size`: 413 payload_too_large for a body over the limit, announced or sent."""

    order: ClassVar[int] = ORDER_BODY_LIMIT

    def __init__(self, limit: int) -> None:
        self.name = "max_body_size"
        self.limit = limit

    def on_request(self, req: Request) -> RequestResult:
        if req.body_length > self.limit:
            return Reply.error(413, "payload_too_large")
        return None

    def on_request_body(self, req: Request, data: bytes, end: bool) -> bytes | Reply:
        if req.body_received > self.limit:
            return Reply.error(413, "payload_too_large")
        return data


class ConsumerLimits:
    """The limiters of consumers with their own rate (`consumers.NAME.rate_limit`) on one
    route limited by consumer: made on a consumer's first request, remade when its rate or
    burst changes; one per configured consumer at most."""

    def __init__(self, make: Callable[[str, float, int], Limiter]) -> None:
        self.make = make
        self._by_name: dict[str, tuple[float, int, Limiter]] = {}

    def get(self, consumer: Consumer) -> Limiter:
        found = self._by_name.get(consumer.name)
        if found is None or found[0] != consumer.rate or found[1] != consumer.burst:
            limiter = self.make(consumer.name, consumer.rate, consumer.burst)
            found = self._by_name[consumer.name] = (consumer.rate, consumer.burst, limiter)
        return found[2]

    def __len__(self) -> int:
        return len(self._by_name)


class RateLimit(Filter):
    """`rate_limit`: 429 rate_limited (with RateLimit-* and Retry-After) when refused; the
    RateLimit-* fields on admitted responses too; a shared (Redis) limit waits for its answer,
    a leaky bucket without nodelay holds the request for its delay. With `key: consumer`, a
    consumer with its own rate is limited by its own limiter (`overrides`)."""

    order: ClassVar[int] = ORDER_RATE_LIMIT

    def __init__(self, limiter: Limiter, key: KeySpec | None, route: str,
                 overrides: ConsumerLimits | None = None) -> None:
        self.name = "rate_limit"
        self.limiter = limiter
        self.key = key
        self.route = route
        self.window = limiter.window
        self.local = limiter if type(limiter) is LocalLimiter else None
        self.overrides = overrides
        self.slot = "rate_limit:" + route  # where the decision waits for the response

    def on_request(self, req: Request) -> RequestResult:
        spec = self.key
        key = spec.extract(req, self.route) if spec is not None else req.client_ip
        overrides = self.overrides
        if overrides is not None:
            consumer = req.consumer
            if consumer is not None and consumer.rate > 0.0:
                return self._own(req, key, overrides.get(consumer))
        local = self.local
        decision = (local.decide_sync(key, req.started) if local is not None
                    else self.limiter.decide_sync(key, req.started))
        if decision is None:
            return self._shared(req, key, self.limiter)
        return self._apply(req, decision, self.window)

    def _own(self, req: Request, key: str, limiter: Limiter) -> RequestResult:
        decision = limiter.decide_sync(key, req.started)
        if decision is None:
            return self._shared(req, key, limiter)
        return self._apply(req, decision, limiter.window)

    def _apply(self, req: Request, decision: Decision, window: float) -> RequestResult:
        if not decision.allowed:
            reply = Reply.error(429, "rate_limited")
            reply.fields = response_headers(decision, window)
            return reply
        req.vars[self.slot] = decision if window == self.window else (decision, window)
        if decision.delay > 0:  # leaky bucket without nodelay: hold the request in the queue
            return asyncio.sleep(decision.delay)
        return None

    async def _shared(self, req: Request, key: str, limiter: Limiter) -> Reply | None:
        try:
            decision = await limiter.decide(key, req.started)
        except Exception as exc:  # noqa: BLE001
            # The limiter applies on_store_failure itself; anything else is a bug, and a
            # limiter bug must not take the route down: admit and let the log show it.
            log.error("rate limiter failed on route %s: %r", self.route, exc)
            return None
        result = self._apply(req, decision, limiter.window)
        if result is None or isinstance(result, Reply):
            return result
        return await result

    def on_response(self, req: Request, resp: Response) -> None:
        # RateLimit-* on admitted responses too (IETF RateLimit fields), so clients can pace
        # themselves before they are refused.
        found = req.vars.get(self.slot)
        if isinstance(found, Decision):
            fields, lines = response_fields(found, self.window)
            resp.append_block(fields, lines)
        elif isinstance(found, tuple):
            decision, window = found
            fields, lines = response_fields(decision, window)
            resp.append_block(fields, lines)


class Concurrency(Filter):
    """`max_concurrent`: 503 overloaded when the route's requests in flight are at the limit."""

    order: ClassVar[int] = ORDER_CONCURRENCY

    def __init__(self, limiter: ConcurrencyLimiter) -> None:
        self.name = "max_concurrent"
        self.limiter = limiter

    def on_request(self, req: Request) -> RequestResult:
        if self.limiter.try_acquire():
            return None
        return Reply.error(503, "overloaded")

    def on_done(self, req: Request, resp: Response | None) -> None:
        self.limiter.release()


class Split(Filter):
    """`split`: chooses the upstream of a gray split (the last filter: it only picks)."""

    order: ClassVar[int] = ORDER_SPLIT

    def __init__(self, split: TrafficSplit[tuple[str, SubsetChain | None]],
                 route: str) -> None:
        self.name = "split"
        self.split = split
        self.route = route

    def on_request(self, req: Request) -> RequestResult:
        upstream, subset = self.split.choose(req, self.route)
        req.upstream = upstream
        if subset is not None:  # the entry's labels win over a subset filter's
            req.subset = subset
        return None
