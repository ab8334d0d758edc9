"""Rate limiting: sans-I/O algorithms (per process) and the cluster-wide Redis store."""

from edgeward.ratelimit.concurrency import ConcurrencyLimiter
from edgeward.ratelimit.config import RateLimitConfig, RedisConfig
from edgeward.ratelimit.decision import Decision, response_headers
from edgeward.ratelimit.gcra import GCRA
from edgeward.ratelimit.keys import KeySpec, parse_key_spec
from edgeward.ratelimit.leaky_bucket import LeakyBucket
from edgeward.ratelimit.limiter import (
    Limiter,
    LimiterStats,
    LocalLimiter,
    build_local_limiter,
    make_algorithm,
)
from edgeward.ratelimit.sliding_window import SlidingWindow
from edgeward.ratelimit.token_bucket import TokenBucket

__all__ = [
    "GCRA",
    "ConcurrencyLimiter",
    "Decision",
    "KeySpec",
    "LeakyBucket",
    "Limiter",
    "LimiterStats",
    "LocalLimiter",
    "RateLimitConfig",
    "RedisConfig",
    "SlidingWindow",
    "TokenBucket",
    "build_local_limiter",
    "make_algorithm",
    "parse_key_spec",
    "response_headers",
]
# GlobalLimiter lives in edgeward.ratelimit.redis_store so that importing the algorithms does
# not import redis-py.
