"""GlobalLimiter against a real redis-server started on a free 127.0.0.1 port."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from tests.support.redis_server import REDIS_SERVER, RedisServer

from edgeward.ratelimit.config import RateLimitConfig, RedisConfig
from edgeward.ratelimit.redis_store import GlobalLimiter, connect

pytestmark = pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="needs redis-server")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


def limiter(
    server: RedisServer, route: str, timeout: float = 0.05, **overrides: object
) -> GlobalLimiter:
    settings: dict[str, object] = {"rate": 100.0, "burst": 20, "scope": "global"}
    settings.update(overrides)
    config = RateLimitConfig(**settings)  # type: ignore[arg-type]
    assert config.check() == []
    redis_config = RedisConfig(url=server.url, timeout=timeout, open_for=0.2)
    return GlobalLimiter(connect(redis_config), route=route, config=config, redis=redis_config)


async def flood(lim: GlobalLimiter, key: str, until: float) -> tuple[int, int]:
    """Ask as fast as one client can until `until` (monotonic); (admitted, asked)."""
    admitted = asked = 0
    while (now := time.monotonic()) < until:
        decision = lim.decide_sync(key, now)
        if decision is None:
            decision = await lim.decide(key, now)
        else:
            await asyncio.sleep(0)          # a real shell yields between requests
        asked += 1
        admitted += decision.allowed
    return admitted, asked


async def test_one_limiter_gives_the_burst_then_refuses(redis_server: RedisServer) -> None:
    lim = limiter(redis_server, "burst", rate=1.0, burst=3)
    decisions = [await lim.decide("k", time.monotonic()) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[-1].retry_after == pytest.approx(1.0, abs=0.05)
    keys = await lim.client.keys("*")
    assert keys == [b"{edgeward:rl:burst:k}"]          # one hash-tagged key per limit key
    assert 0 < await lim.client.pttl(keys[0]) <= 3001  # and it expires on its own


@pytest.mark.parametrize("algorithm", ["gcra", "sliding_window"])
async def test_several_clients_sharing_a_key_stay_within_5_percent_of_the_budget(
    redis_server: RedisServer, algorithm: str
) -> None:
    # Accuracy, not failure handling: a generous deadline so a stall of this shared VM does not
    # send a client to its fallback (checked below).
    limiters = [limiter(redis_server, "shared", timeout=1.0, rate=200.0, burst=40,
                        algorithm=algorithm) for _ in range(4)]
    assert all(await asyncio.gather(*(lim.prepare() for lim in limiters)))
    start = time.monotonic()
    until = start + 1.5
    results = await asyncio.gather(*(flood(lim, "k", until) for lim in limiters))
    elapsed = time.monotonic() - start
    assert sum(lim.stats.store_errors for lim in limiters) == 0
    admitted = sum(a for a, _ in results)
    budget = 40 + 200.0 * elapsed
    assert sum(asked for _, asked in results) > 3 * budget      # it really was a flood
    low = 0.95 if algorithm == "gcra" else 0.85               # sliding window is conservative
    assert low * budget <= admitted <= 1.05 * budget
    assert all(a > 0 for a, _ in results)


WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from edgeward.ratelimit.config import RateLimitConfig, RedisConfig
    from edgeward.ratelimit.redis_store import GlobalLimiter, connect

    async def main(url, mode, start_at, seconds):
        cfg = RateLimitConfig(rate=300.0, burst=60, scope="global", mode=mode, processes=4)
        rcfg = RedisConfig(url=url, timeout=1.0)
        lim = GlobalLimiter(connect(rcfg), route="procs-" + mode, config=cfg, redis=rcfg)
        assert await lim.prepare()
        while time.time() < start_at:
            await asyncio.sleep(0.001)
        admitted = asked = 0
        first = time.time()
        until = time.monotonic() + seconds
        while (now := time.monotonic()) < until:
            d = lim.decide_sync("k", now)
            if d is None:
                d = await lim.decide("k", now)
            await asyncio.sleep(0.0005)  # ~1,500 req/s per process: a flood, not a CPU hog
            asked += 1
            admitted += d.allowed
        print(json.dumps({"admitted": admitted, "asked": asked, "first": first, "last": time.time(),
                          "calls": lim.stats.store_calls, "errors": lim.stats.store_errors}))

    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])))
    """
)


@pytest.mark.parametrize("mode", ["direct", "lease"])
def test_four_os_processes_share_one_budget(redis_server: RedisServer, mode: str) -> None:
    seconds = 1.5
    start_at = time.time() + 1.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, redis_server.url, mode, str(start_at), str(seconds)],
            stdout=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outputs = [json.loads(p.communicate(timeout=30)[0]) for p in procs]
    admitted = sum(o["admitted"] for o in outputs)
    asked = sum(o["asked"] for o in outputs)
    calls = sum(o["calls"] for o in outputs)
    assert all(o["errors"] == 0 for o in outputs), outputs
    span = max(o["last"] for o in outputs) - min(o["first"] for o in outputs)
    budget = 60 + 300.0 * span
    assert asked > 2 * budget
    # Upper bounds are the limiter's promise. The lower ones only show the budget is shared,
    # not lost: a stall of this shared VM leaves gaps in the demand, and a bucket carries no
    # more than its burst over a gap (the benchmark, not this test, measures the accuracy).
    if mode == "direct":
        assert 0.80 * budget <= admitted <= 1.05 * budget
        assert calls == asked
    else:
        max_slice = 60 // (2 * 4)
        assert 0.80 * budget <= admitted <= budget + 4 * max_slice
        assert calls < 0.2 * asked               # far fewer Redis calls than requests


async def test_lease_mode_cuts_redis_calls_and_stays_within_its_bound(
    redis_server: RedisServer,
) -> None:
    limiters = [limiter(redis_server, "lease", timeout=1.0, rate=500.0, burst=200, mode="lease",
                        processes=4) for _ in range(4)]
    assert all(await asyncio.gather(*(lim.prepare() for lim in limiters)))
    start = time.monotonic()
    results = await asyncio.gather(*(flood(lim, "k", start + 1.5) for lim in limiters))
    elapsed = time.monotonic() - start
    assert sum(lim.stats.store_errors for lim in limiters) == 0
    admitted = sum(a for a, _ in results)
    asked = sum(n for _, n in results)
    calls = sum(lim.stats.store_calls for lim in limiters)
    budget = 200 + 500.0 * elapsed
    bound = budget + 4 * limiters[0].max_slice
    assert 0.9 * budget <= admitted <= bound
    assert calls / asked < 0.1


async def test_lease_mode_below_the_limit_admits_everything_with_few_calls(
    redis_server: RedisServer,
) -> None:
    lim = limiter(redis_server, "lease-light", rate=1000.0, burst=1000, mode="lease")
    admitted = 0
    for _ in range(400):                        # ~400 req/s, well under 1000/s
        now = time.monotonic()
        d = lim.decide_sync("k", now) or await lim.decide("k", now)
        admitted += d.allowed
        await asyncio.sleep(0.0025)
    assert admitted == 400
    assert lim.stats.store_calls < 40


async def test_noscript_after_a_script_flush_reloads_the_script(redis_server: RedisServer) -> None:
    # A generous deadline: this is about NOSCRIPT, and a stall of the VM must not count as
    # a store error.
    lim = limiter(redis_server, "flush", timeout=1.0)
    assert (await lim.decide("k", time.monotonic())).allowed
    await lim.client.script_flush()
    assert (await lim.decide("k", time.monotonic())).allowed
    assert lim.stats.store_errors == 0


async def test_shadow_mode_never_refuses_but_counts(redis_server: RedisServer) -> None:
    lim = limiter(redis_server, "shadow", rate=1.0, burst=2, enforce=False)
    decisions = [await lim.decide("k", time.monotonic()) for _ in range(5)]
    assert all(d.allowed for d in decisions)
    assert [d.shadow for d in decisions] == [False, False, True, True, True]
    assert lim.stats.shadow_refused == 3 and lim.stats.refused == 0


@pytest.mark.parametrize("policy", ["allow", "deny", "local"])
async def test_redis_stopped_follows_on_store_failure_then_recovers(
    redis_server: RedisServer, policy: str
) -> None:
    lim = limiter(redis_server, "fail-" + policy, rate=10.0, burst=10, processes=2,
                  on_store_failure=policy)
    assert (await lim.decide("k", time.monotonic())).allowed
    redis_server.stop()

    t0 = time.monotonic()
    decisions = []
    for _ in range(20):
        now = time.monotonic()
        decisions.append(lim.decide_sync("k", now) or await lim.decide("k", now))
    assert time.monotonic() - t0 < 0.5             # never hangs: one timeout, then fallback
    assert not lim.store_up
    admitted = sum(d.allowed for d in decisions)
    expected = {"allow": 20, "deny": 0, "local": 5}[policy]   # local: burst 10 / 2 processes
    assert admitted == expected
    calls_while_down = lim.stats.store_calls
    assert calls_while_down <= 2                   # the breaker keeps Redis out of the path

    redis_server.start()
    await asyncio.sleep(0.25)                      # past open_for: the next call probes
    assert (await lim.decide("k", time.monotonic())).allowed
    assert lim.store_up
    assert lim.stats.store_calls > calls_while_down
    # Back on the shared bucket: a fresh Redis has the whole burst again.
    more = [await lim.decide("k", time.monotonic()) for _ in range(15)]
    assert 8 <= sum(d.allowed for d in more) <= 10


async def test_a_hung_redis_costs_one_timeout_then_the_fallback(
    redis_server: RedisServer,
) -> None:
    lim = limiter(redis_server, "hung", on_store_failure="deny")
    assert (await lim.decide("k", time.monotonic())).allowed
    redis_server.pause()
    try:
        t0 = time.monotonic()
        first = await lim.decide("k", t0)
        took = time.monotonic() - t0
        assert not first.allowed and 0.04 <= took < 0.2
        assert lim.decide_sync("k", time.monotonic()) is not None   # no await while open
    finally:
        redis_server.resume()
    await asyncio.sleep(0.25)
    # The connection that timed out is dropped; a new one is made and works.
    assert (await lim.decide("k", time.monotonic())).allowed
    assert lim.store_up
