"""Rate-limit configuration: `routes[].rate_limit` (RateLimitConfig) and top-level `redis:`.

```yaml
redis: {url: redis://127.0.0.1:6379/0, timeout: 50ms}
routes:
  - match: {path_prefix: /orders}
    rate_limit: {rate: 100/s, burst: 50, key: client_ip}
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from edgeward.ratelimit.keymap import DEFAULT_MAX_BYTES, DEFAULT_MAX_KEYS, ENTRY_BYTES
from edgeward.ratelimit.keys import KeySpec, parse_key_spec
from edgeward.tls.config import StoreTlsConfig
from edgeward.values import Address, Duration, Rate, Size, doc

Algorithm = Literal["gcra", "token_bucket", "leaky_bucket", "sliding_window"]

# When `burst` is omitted: one second of traffic at `rate` (at least 1). Envoy's local_ratelimit
# examples set max_tokens == tokens_per_fill with a 1 s fill_interval; Sentinel's QPS rules and
# Kong's `second` limit likewise allow a whole second's count at once.
DEFAULT_BURST_SECONDS = 1.0
# The request attribute most limits are about at an edge: the peer (nginx $binary_remote_addr).
DEFAULT_KEY = "client_ip"
# GCRA: exact burst + rate*t, one float per key, one Lua script in Redis (redis-cell, Stripe).
DEFAULT_ALGORITHM: Algorithm = "gcra"
# nginx limit_req delays queued requests unless `nodelay` is given.
DEFAULT_NODELAY = False
# Envoy local_ratelimit: `filter_enforced` decides refusals; off = shadow mode.
DEFAULT_ENFORCE = True
# Per process, no Redis dependency, as Envoy's local_ratelimit and nginx limit_req.
DEFAULT_SCOPE: Literal["local", "global"] = "local"
# Keep limiting when Redis is away, per process at rate/processes: neither fails open to
# unbounded traffic (Kong fault_tolerant, Envoy failure_mode_deny=false) nor refuses everything.
DEFAULT_ON_STORE_FAILURE: Literal["allow", "deny", "local"] = "local"
# The number of gateway processes sharing a global budget; the local fallback gives each
# process rate/processes. 1 = a single process (the safe over-estimate when unknown).
DEFAULT_PROCESSES = 1
# One Redis round trip per decision: exact; `lease` trades a bounded delay for far fewer calls.
DEFAULT_MODE: Literal["direct", "lease"] = "direct"

# redis: Redis itself listens on 6379; database 0.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_REDIS_DB = 0
# A limiter check must cost far less than the request: Envoy's ratelimit service client uses a
# 20 ms timeout by default; 50 ms leaves room for a busy Redis while never hanging a request.
DEFAULT_REDIS_TIMEOUT = 0.05
DEFAULT_KEY_PREFIX = "edgeward:rl"
# After a failure, stay on the fallback this long before trying Redis again (circuit-breaker
# style; resilience4j's waitDurationInOpenState is 60 s, far too long for a rate limiter).
DEFAULT_REDIS_OPEN_FOR = 1.0


@dataclass(frozen=True, kw_only=True)
class RateLimitConfig:
    rate: Rate = field(metadata=doc("Sustained rate: N/s, N/m or N/h. Required."))
    burst: int | None = field(
        default=None,
        metadata=doc("Most requests admitted at once; default one second of `rate` (min 1)."),
    )
    key: str = field(
        default=DEFAULT_KEY,
        metadata=doc("client_ip | route | consumer (the authenticated consumer) | "
                     "header:NAME (missing -> client IP)."),
    )
    algorithm: Algorithm = field(default=DEFAULT_ALGORITHM, metadata=doc("Limiting algorithm."))
    nodelay: bool = field(
        default=DEFAULT_NODELAY, metadata=doc("leaky_bucket only: forward a burst at once.")
    )
    enforce: bool = field(
        default=DEFAULT_ENFORCE, metadata=doc("False = shadow mode: count, never refuse.")
    )
    scope: Literal["local", "global"] = field(
        default=DEFAULT_SCOPE, metadata=doc("local = per process; global = shared through Redis.")
    )
    on_store_failure: Literal["allow", "deny", "local"] = field(
        default=DEFAULT_ON_STORE_FAILURE, metadata=doc("What a global limit does without Redis.")
    )
    processes: int = field(
        default=DEFAULT_PROCESSES, metadata=doc("Processes sharing a global limit (fallback).")
    )
    mode: Literal["direct", "lease"] = field(
        default=DEFAULT_MODE, metadata=doc("global only: a Redis call per request, or leases.")
    )
    max_keys: int = field(
        default=DEFAULT_MAX_KEYS, metadata=doc("Most keys remembered per process (LRU).")
    )
    max_memory: Size = field(
        default=DEFAULT_MAX_BYTES,
        metadata=doc("Most bytes of key table per process, LRU past it (nginx limit_req zones "
                     "are sized in bytes); ~300 bytes per key."),
    )

    @property
    def effective_burst(self) -> int:
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.rate * DEFAULT_BURST_SECONDS - 1e-9))

    @property
    def window(self) -> float:
        """Seconds over which the burst refills: the `w` of the RateLimit-Policy header."""
        return self.effective_burst / self.rate

    def key_spec(self) -> KeySpec:
        return parse_key_spec(self.key)

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.rate > 0:
            problems.append(("rate", f"must be above 0, got {self.rate!r}"))
        if self.burst is not None and self.burst < 1:
            problems.append(("burst", f"must be >= 1, got {self.burst}"))
        try:
            self.key_spec()
        except ValueError as exc:
            problems.append(("key", str(exc)))
        if self.nodelay and self.algorithm != "leaky_bucket":
            problems.append(
                ("nodelay", f"only applies to algorithm leaky_bucket, not {self.algorithm}")
            )
        if self.processes < 1:
            problems.append(("processes", f"must be >= 1, got {self.processes}"))
        if self.max_keys < 1:
            problems.append(("max_keys", f"must be >= 1, got {self.max_keys}"))
        if self.max_memory < 1024:
            problems.append(("max_memory", f"must be at least 1KiB ({ENTRY_BYTES} bytes per "
                                           f"key), got {self.max_memory}"))
        if self.scope == "global" and self.algorithm not in ("gcra", "sliding_window"):
            problems.append(
                (
                    "algorithm",
                    f"scope global supports gcra and sliding_window, got {self.algorithm}",
                )
            )
        if self.mode == "lease" and (self.scope != "global" or self.algorithm != "gcra"):
            problems.append(("mode", "lease needs scope: global and algorithm: gcra"))
        return problems


@dataclass(frozen=True, kw_only=True)
class RedisSentinelConfig:
    """`redis.sentinel`: find the master through Redis Sentinel and follow its failovers."""

    master: str = field(metadata=doc("the master's name in Sentinel (`sentinel monitor NAME`). "
                                     "Required."))
    nodes: list[Address] = field(
        metadata=doc("Sentinel addresses HOST:PORT, asked in order (Sentinel listens on 26379). "
                     "Required."))
    db: int = field(default=DEFAULT_REDIS_DB, metadata=doc("database number on the master"))
    username: str | None = field(
        default=None, metadata=doc("ACL user of the Sentinels themselves (if they require one)"))
    password: str | None = field(
        default=None, repr=False,
        metadata=doc("password of the Sentinels (`requirepass` on the Sentinels); never shown"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.master.strip():
            problems.append(("master", "must not be empty"))
        if not self.nodes:
            problems.append(("nodes", "at least one Sentinel HOST:PORT is needed"))
        if self.db < 0:
            problems.append(("db", f"must be >= 0, got {self.db}"))
        if self.password is not None and not self.password:
            problems.append(("password", "must not be empty"))
        return problems


@dataclass(frozen=True, kw_only=True)
class RedisClusterConfig:
    """`redis.cluster`: a Redis Cluster; the client learns the slot map from these seeds and
    follows MOVED and ASK redirections."""

    nodes: list[Address] = field(
        metadata=doc("seed nodes HOST:PORT (any of them; the rest are discovered). Required."))

    def check(self) -> list[tuple[str, str]]:
        if not self.nodes:
            return [("nodes", "at least one cluster node HOST:PORT is needed")]
        return []


@dataclass(frozen=True, kw_only=True)
class RedisConfig:
    url: str = field(
        default=DEFAULT_REDIS_URL,
        metadata=doc("one Redis: redis://[user:password@]host:port/db, rediss:// for TLS, or "
                     "unix://path; not used with sentinel or cluster"))
    username: str | None = field(
        default=None, metadata=doc("ACL user (Redis 6+ `AUTH user password`); or in the url"))
    password: str | None = field(
        default=None, repr=False,
        metadata=doc("password (of the ACL user, or `requirepass`); or in the url; never "
                     "logged or shown in GET /config"))
    tls: StoreTlsConfig | None = field(
        default=None,
        metadata=doc("CA, client certificate and verification for TLS (rediss:// url, or the "
                     "nodes of sentinel/cluster)"))
    sentinel: RedisSentinelConfig | None = field(
        default=None, metadata=doc("use Redis Sentinel: {master, nodes}; instead of url"))
    cluster: RedisClusterConfig | None = field(
        default=None, metadata=doc("use Redis Cluster: {nodes}; instead of url"))
    timeout: Duration = field(
        default=DEFAULT_REDIS_TIMEOUT, metadata=doc("Deadline of every Redis call.")
    )
    key_prefix: str = field(default=DEFAULT_KEY_PREFIX, metadata=doc("Prefix of limiter keys."))
    open_for: Duration = field(
        default=DEFAULT_REDIS_OPEN_FOR, metadata=doc("Pause after a failure before retrying.")
    )

    @property
    def kind(self) -> Literal["single", "sentinel", "cluster"]:
        if self.sentinel is not None:
            return "sentinel"
        return "cluster" if self.cluster is not None else "single"

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.sentinel is not None and self.cluster is not None:
            problems.append(("cluster", "give sentinel or cluster, not both"))
        if self.url != DEFAULT_REDIS_URL and self.kind != "single":
            problems.append(("url", f"a single Redis; with {self.kind} the addresses are "
                                    f"{self.kind}.nodes (drop url)"))
        problems.extend(self._url_problems())
        if not self.timeout > 0:
            problems.append(("timeout", f"must be above 0, got {self.timeout!r}"))
        if not self.open_for > 0:
            problems.append(("open_for", f"must be above 0, got {self.open_for!r}"))
        if not self.key_prefix or any(c in self.key_prefix for c in "{} "):
            reason = f"must be non-empty without braces or spaces, got {self.key_prefix!r}"
            problems.append(("key_prefix", reason))
        if self.password is not None and not self.password:
            problems.append(("password", "must not be empty"))
        if self.username is not None and self.password is None:
            problems.append(("password", "username needs a password (ACL users AUTH with both)"))
        return problems

    def _url_problems(self) -> list[tuple[str, str]]:
        url = self.url
        if not url.startswith(("redis://", "rediss://", "unix://")):
            # redaction (edgeward.redact) takes the password out of the echoed value
            return [("url", f"must start with redis://, rediss:// or unix://, got {url!r}")]
        problems: list[tuple[str, str]] = []
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError as exc:
            return [("url", f"malformed: {exc}")]
        if parts.password is not None and self.password is not None:
            problems.append(("password", "the url carries a password too; give it once"))
        if parts.username and self.username is not None:
            problems.append(("username", "the url carries a user too; give it once"))
        if self.tls is not None and self.kind == "single" and parts.scheme != "rediss":
            problems.append(("tls", f"set, but the url is {parts.scheme}:// (plain); use "
                                    f"rediss:// for TLS"))
        return problems
