"""Cluster-wide limits through Redis: GlobalLimiter, direct or leased, with a fallback.

Direct mode: one EVALSHA per decision, atomic in Redis (no read-then-write race like Kong's
early redis policy, Kong #2629/#3329). Lease mode: a process takes a slice of the budget from
the same GCRA bucket in one call and spends it locally; the slice aims at LEASE_TARGET seconds
of the traffic this process sees for the key, within [LEASE_MIN, max_slice], so Redis calls
per request fall far below 1. When a grant is short, the process waits (refusing locally)
until a whole slice is available, so a saturated key does not cost a call per request either.

Over-admission bound of lease mode: a slice taken from Redis is already counted there, but it
may be spent up to LEASE_TTL later, so in any interval of t seconds the fleet admits at most
burst + rate * t + processes * max_slice, with max_slice <= burst / (2 * processes): at most
one unspent slice per process, never more than 1.5 * burst + rate * t in all. Unspent tokens
expire after LEASE_TTL (they are not handed back), which can only under-admit.

Failures: every call runs under `redis.timeout`. On an error or timeout the limiter opens for
`redis.open_for` seconds and answers from `on_store_failure` without touching Redis (allow,
deny, or a per-process limiter at rate / processes); then one probe call goes to Redis while
the other requests keep the fallback, and a success closes it again. No request ever waits
longer than the timeout.

Keys are `{<key_prefix>:<route>:<key>}`: the braces are a Redis Cluster hash tag, and each
script touches exactly that one key, so it works unchanged on a cluster.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from redis.exceptions import NoScriptError

from edgeward.ratelimit import scripts
from edgeward.ratelimit.config import RateLimitConfig, RedisConfig
from edgeward.ratelimit.decision import Decision
from edgeward.ratelimit.keymap import KeyMap
from edgeward.ratelimit.limiter import LimiterStats, LocalLimiter, make_algorithm, settle
from edgeward.ratelimit.redis_client import (
    CONNECT_TIMEOUT,
    STORE_ERRORS,
    RedisClient,
    connect,
    describe,
    disconnect,
)
from edgeward.redact import redact_text

log = logging.getLogger(__name__)

__all__ = ["GlobalLimiter", "LuaScript", "connect"]

# A lease aims at this much of the key's local traffic: 100 ms keeps the over-admission window
# short while cutting calls ~100x at 1,000 req/s (Envoy's ratelimit "near limit" caching and
# Kong's sync_rate batching work on the same order of a fraction of a second).
LEASE_TARGET = 0.1
LEASE_MIN = 1
LEASE_MAX = 1000
# Unspent lease tokens expire after this: bounds how stale a spent token can be.
LEASE_TTL = 1.0
# prepare(): connecting and loading scripts at startup may take longer than one decision.
PREPARE_TIMEOUT = CONNECT_TIMEOUT
# Waiting for an in-flight lease fetch and retrying: at most this many rounds per request.
LEASE_ROUNDS = 3

_STORE_ERRORS = STORE_ERRORS


class LuaScript:
    """EVALSHA with the hash computed locally; on NOSCRIPT (a restarted or failed-over Redis)
    load the source once and run it again."""

    __slots__ = ("source", "sha")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = scripts.sha1(source)

    async def run(self, client: RedisClient, key: str, *args: float | int) -> list[int]:
        result = await self.call(client, (key,), args)
        return [int(x) for x in result]

    async def call(self, client: RedisClient, keys: tuple[str, ...],
                   args: tuple[float | int | str | bytes, ...]) -> Any:
        """The script on `keys` (all in one hash slot on a cluster) with `args`: its raw
        reply (the device store's scripts return ids and documents, not only integers)."""
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


GCRA_SCRIPT = LuaScript(scripts.GCRA)
GCRA_LEASE_SCRIPT = LuaScript(scripts.GCRA_LEASE)
SLIDING_WINDOW_SCRIPT = LuaScript(scripts.SLIDING_WINDOW)


class _Lease:
    """Tokens this process holds for one key, and what it knows of the key in Redis."""

    __slots__ = (
        "tokens", "expires", "remaining", "reset_at", "wait_until", "slice", "used", "since",
        "pending",
    )

    def __init__(self, now: float) -> None:
        self.tokens = 0
        self.expires = 0.0
        self.remaining = 0         # Redis' remaining after the last grant
        self.reset_at = now
        self.wait_until = 0.0      # refuse locally until then (a short or empty grant)
        self.slice = LEASE_MIN
        self.used = 0              # cost spent since the last fetch: the observed local rate
        self.since = now
        self.pending: asyncio.Future[None] | None = None


def _lease_spent(lease: _Lease, now: float) -> bool:
    """Nothing left to spend, wait for or fetch: the key is as good as never seen."""
    return lease.pending is None and now >= lease.expires and now >= lease.wait_until


class GlobalLimiter:
    """One route's cluster-wide limit. See the module docstring for modes and failures."""

    __slots__ = (
        "client", "route", "enforce", "rate", "burst", "window", "mode", "on_store_failure",
        "stats", "store_up", "max_slice", "_prefix", "_interval_us", "_length_us", "_script",
        "_timeout", "_open_for", "_down_until", "_probing", "_fallback", "_leases", "_where",
    )
    local = False

    def __init__(
        self,
        client: RedisClient,
        *,
        route: str,
        config: RateLimitConfig,
        redis: RedisConfig,
    ) -> None:
        self.client = client
        self.route = route
        self.enforce = config.enforce
        self.rate = config.rate
        self.burst = config.effective_burst
        self.window = config.window
        self.mode = config.mode
        self.on_store_failure = config.on_store_failure
        self.stats = LimiterStats()
        self.store_up = True
        processes = config.processes
        self.max_slice = max(LEASE_MIN, min(LEASE_MAX, self.burst // (2 * processes)))
        self._where = describe(redis)
        self._prefix = "{" + redis.key_prefix + ":" + route + ":"
        self._interval_us = 1e6 / config.rate
        self._length_us = self.window * 1e6
        sliding = config.algorithm == "sliding_window"
        self._script = SLIDING_WINDOW_SCRIPT if sliding else GCRA_SCRIPT
        self._timeout = redis.timeout
        self._open_for = redis.open_for
        self._down_until = 0.0
        self._probing = False
        self._fallback: LocalLimiter | None = None
        if config.on_store_failure == "local":
            self._fallback = LocalLimiter(make_algorithm(config, share=processes))
        self._leases: KeyMap[_Lease] = KeyMap(config.max_keys, config.max_memory, _lease_spent)

    async def prepare(self, timeout: float = PREPARE_TIMEOUT) -> bool:
        """Connect and load the scripts before traffic arrives (at startup or after a reload),
        so the first requests do not pay for the TCP handshake inside their short deadline.
        Returns whether Redis answered; if not, the limiter starts on its fallback."""
        try:
            async with asyncio.timeout(timeout):
                for script in (self._script, GCRA_LEASE_SCRIPT):
                    await self.client.script_load(script.source)
        except _STORE_ERRORS as exc:
            reason = redact_text(str(exc).strip() or type(exc).__name__)
            log.warning("rate limit %s: Redis at %s did not answer (%s); on_store_failure=%s "
                        "until it does", self.route, self._where, reason, self.on_store_failure)
            self.store_up = False
            self._down_until = 0.0      # the first request probes again
            return False
        self.store_up = True
        return True

    def table_stats(self) -> dict[str, int]:
        """The lease table's size against its bounds (the Redis keys expire in Redis)."""
        return self._leases.stats()

    def redis_key(self, key: str) -> str:
        return self._prefix + key + "}"

    # -- the Limiter interface -------------------------------------------------------------

    def decide_sync(self, key: str, now: float, cost: int = 1) -> Decision | None:
        if now < self._down_until or (self._probing and not self.store_up):
            return self._fall_back(key, now, cost)
        if self.mode == "lease":
            lease = self._leases.get(key)
            if lease is not None:
                return self._from_lease(lease, now, cost)
        return None

    async def decide(self, key: str, now: float, cost: int = 1) -> Decision:
        if cost < 1 or cost > self.burst:
            raise ValueError(f"cost must be between 1 and burst={self.burst}, got {cost!r}")
        decision = self.decide_sync(key, now, cost)
        if decision is not None:
            return decision
        if self.mode == "lease":
            return await self._decide_leased(key, now, cost)
        try:
            verdict, remaining, reset_us, retry_us = await self._call(
                self._script, key, now, self._script_args(cost)
            )
        except _STORE_ERRORS:
            return self._fall_back(key, now, cost)
        return settle(
            Decision(bool(verdict), self.burst, remaining, reset_us / 1e6, retry_us / 1e6),
            self.enforce,
            self.stats,
        )

    # -- Redis calls and the breaker -------------------------------------------------------

    def _script_args(self, cost: int) -> tuple[float, int, int]:
        if self._script is SLIDING_WINDOW_SCRIPT:
            return (self._length_us, self.burst, cost)
        return (self._interval_us, self.burst, cost)

    async def _call(
        self, script: LuaScript, key: str, now: float, args: tuple[float, int, int]
    ) -> list[int]:
        probe = not self.store_up
        if probe:
            self._probing = True
        self.stats.store_calls += 1
        try:
            async with asyncio.timeout(self._timeout):
                result = await script.run(self.client, self.redis_key(key), *args)
        except _STORE_ERRORS as exc:
            self.stats.store_errors += 1
            self.store_up = False
            self._down_until = now + self._open_for
            if not isinstance(exc, TimeoutError):
                # Every pooled connection to a Redis that went away is dead: drop them all
                # now, or each would fail once after Redis returns and pause the limiter again.
                asyncio.get_running_loop().create_task(disconnect(self.client))
            raise
        finally:
            if probe:
                self._probing = False
        self.store_up = True
        self._down_until = 0.0
        return result

    def _fall_back(self, key: str, now: float, cost: int) -> Decision:
        self.stats.fallback += 1
        policy = self.on_store_failure
        if policy == "local" and self._fallback is not None:
            return settle(self._fallback.algorithm.decide(key, now, cost), self.enforce, self.stats)
        if policy == "allow":
            return settle(Decision(True, self.burst, self.burst, 0.0), self.enforce, self.stats)
        wait = max(self._down_until - now, self._open_for / 10)
        return settle(Decision(False, self.burst, 0, wait, wait), self.enforce, self.stats)

    # -- lease mode ------------------------------------------------------------------------

    def _from_lease(self, lease: _Lease, now: float, cost: int) -> Decision | None:
        if lease.tokens >= cost and now < lease.expires:
            lease.tokens -= cost
            lease.used += cost
            decision = Decision(
                True, self.burst, lease.remaining + lease.tokens, max(0.0, lease.reset_at - now)
            )
            return settle(decision, self.enforce, self.stats)
        if now < lease.wait_until and lease.pending is None:
            lease.used += cost
            wait = lease.wait_until - now
            decision = Decision(False, self.burst, 0, max(wait, lease.reset_at - now), wait)
            return settle(decision, self.enforce, self.stats)
        return None

    async def _decide_leased(self, key: str, now: float, cost: int) -> Decision:
        lease = self._leases.get(key)
        if lease is None:
            lease = _Lease(now)
            self._leases.put(key, lease, now)
        for _ in range(LEASE_ROUNDS):
            if lease.pending is not None:
                await asyncio.shield(lease.pending)
            else:
                try:
                    await self._fetch(lease, key, now, cost)
                except _STORE_ERRORS:
                    return self._fall_back(key, now, cost)
            if now < self._down_until:
                return self._fall_back(key, now, cost)
            decision = self._from_lease(lease, now, cost)
            if decision is not None:
                return decision
        wait = self._interval_us * cost / 1e6
        return settle(Decision(False, self.burst, 0, wait, wait), self.enforce, self.stats)

    async def _fetch(self, lease: _Lease, key: str, now: float, cost: int) -> None:
        elapsed = now - lease.since
        if elapsed > 0 and lease.used:
            observed = lease.used / elapsed
            want = math.ceil(observed * LEASE_TARGET)
            lease.slice = max(LEASE_MIN, min(self.max_slice, want, 2 * lease.slice))
        want = max(lease.slice, cost)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lease.pending = future
        try:
            granted, remaining, reset_us, retry_us = await self._call(
                GCRA_LEASE_SCRIPT, key, now, (self._interval_us, self.burst, want)
            )
        finally:
            lease.pending = None
            future.set_result(None)
        if now >= lease.expires:
            lease.tokens = 0          # what was left of the previous slice expired unspent
        lease.tokens += granted
        lease.expires = now + LEASE_TTL
        lease.remaining = remaining
        lease.reset_at = now + reset_us / 1e6
        lease.wait_until = now + retry_us / 1e6 if granted < want else 0.0
        lease.used = 0
        lease.since = now

    def __repr__(self) -> str:
        state = "up" if self.store_up else "down"
        return (
            f"<GlobalLimiter route={self.route} {self.mode} rate={self.rate:g}/s"
            f" burst={self.burst} redis={state}>"
        )
