"""Config of `cache` (docs/cache.md).

    filters:
      - cache:
          key: {query: [page, sort], headers: [accept-language], consumer: false}
          stale_while_revalidate: 10s
          stale_if_error: 1h
          purge_on: [{path: "/api/users/{id}", keys: ["/api/users/{id}", /api/users]}]
          prewarm: {upstream: api, host: api.example.com, paths: [/api/catalog]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from edgeward.cache.key import ALL_QUERY, KeySpec
from edgeward.cache.policy import RoutePolicy
from edgeward.cache.rules import PurgeRule, compile_template, template_names
from edgeward.filters.cache import Cache
from edgeward.filters.config import BuildContext, register
from edgeward.values import Duration, Size, doc

# nginx proxy_cache_lock_timeout: a request waiting for another's fetch of the same key goes
# to the origin itself after 5s.
DEFAULT_LOCK_TIMEOUT: Final = 5.0
# Methods whose success invalidates (RFC 9111 §4.4: the unsafe ones).
DEFAULT_PURGE_METHODS: Final = ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True, kw_only=True)
class KeyConfig:
    method: bool = field(default=False,
                         metadata=doc("HEAD and GET apart (default: HEAD is served from GET's "
                                      "entry, nginx proxy_cache_convert_head)"))
    query: list[str] = field(
        default_factory=lambda: [ALL_QUERY],
        metadata=doc('query parameters in the key: ["*"] the whole query as received '
                     "(nginx $request_uri), [] none, or the names listed (sorted)"))
    headers: list[str] = field(default_factory=list,
                               metadata=doc("request fields whose values split the key"))
    consumer: bool = field(default=False,
                           metadata=doc("one entry per authenticated consumer (Kong's "
                                        "proxy-cache keys on the consumer id)"))


@dataclass(frozen=True, kw_only=True)
class PurgeRuleConfig:
    path: str = field(metadata=doc("a written path, `{name}` matching one segment"))
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_PURGE_METHODS),
                               metadata=doc("writes that purge when answered 2xx/3xx"))
    keys: list[str] = field(default_factory=list,
                            metadata=doc("paths purged, every query and variant"))
    prefixes: list[str] = field(default_factory=list, metadata=doc("path prefixes purged"))
    tags: list[str] = field(default_factory=list, metadata=doc("tags purged"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.path.startswith("/"):
            problems.append(("path", "must start with /"))
        try:
            compile_template(self.path)
        except Exception as exc:  # noqa: BLE001 - re.error or a duplicate group name
            problems.append(("path", f"not a path template: {exc}"))
        known = template_names(self.path)
        for key in ("keys", "prefixes", "tags"):
            for i, text in enumerate(getattr(self, key)):
                unknown = template_names(text) - known
                if unknown:
                    problems.append((f"{key}[{i}]", f"{{{sorted(unknown)[0]}}} is not in "
                                     f"path {self.path!r}"))
                if key != "tags" and not text.startswith("/"):
                    problems.append((f"{key}[{i}]", "must start with /"))
        if not (self.keys or self.prefixes or self.tags):
            problems.append(("keys", "name at least one of keys, prefixes, tags"))
        return problems


@dataclass(frozen=True, kw_only=True)
class PrewarmConfig:
    upstream: str = field(metadata=doc("where the prewarm requests go"))
    host: str = field(metadata=doc("the Host they carry (part of the key)"))
    paths: list[str] = field(default_factory=list, metadata=doc("paths (with query) fetched"))

    def check(self) -> list[tuple[str, str]]:
        return [(f"paths[{i}]", "must start with /") for i, p in enumerate(self.paths)
                if not p.startswith("/")]


@dataclass(frozen=True, kw_only=True)
class CacheFilterConfig:
    key: KeyConfig = field(default_factory=KeyConfig, metadata=doc("what the key is made of"))
    default_ttl: Duration = field(
        default=0.0, metadata=doc("lifetime of a response that gives none (0: not stored "
                                  "unless it has a validator; nginx proxy_cache_valid)"))
    heuristic: bool = field(default=False,
                            metadata=doc("10% of Date - Last-Modified when no lifetime is "
                                         "given (RFC 9111 §4.2.2; off like Fastly's default)"))
    max_ttl: Duration = field(default=0.0,
                              metadata=doc("cap on any lifetime (0: none)"))
    stale_while_revalidate: Duration = field(
        default=0.0, metadata=doc("served stale while refetched, when the response does "
                                  "not say (nginx proxy_cache_background_update: off)"))
    stale_if_error: Duration = field(
        default=0.0, metadata=doc("served stale when the origin fails, when the response "
                                  "does not say (nginx proxy_cache_use_stale: off)"))
    max_entry_size: Size | None = field(
        default=None, metadata=doc("this route's cap (default: cache.max_entry_size)"))
    lock_timeout: Duration = field(
        default=DEFAULT_LOCK_TIMEOUT,
        metadata=doc("how long a miss waits for another's fetch of the same key"))
    purge_on: list[PurgeRuleConfig] = field(
        default_factory=list, metadata=doc("writes that purge other keys, prefixes, tags"))
    prewarm: PrewarmConfig | None = field(
        default=None, metadata=doc("keys fetched at start, on config change, after purges"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for key in ("default_ttl", "max_ttl", "stale_while_revalidate", "stale_if_error"):
            if getattr(self, key) < 0:
                problems.append((key, "must not be negative"))
        if self.lock_timeout <= 0:
            problems.append(("lock_timeout", "must be above 0"))
        if self.max_entry_size is not None and self.max_entry_size < 1:
            problems.append(("max_entry_size", "must be at least 1"))
        return problems


def _make(config: CacheFilterConfig, ctx: BuildContext) -> Cache:
    runtime = ctx.cache
    if runtime is None:  # built outside a gateway (a config check): a private tier
        from edgeward.cache.runtime import CacheRuntime
        runtime = CacheRuntime(ctx.events)
    k = config.key
    spec = KeySpec(method=k.method, query=tuple(k.query), fields=tuple(k.headers),
                   consumer=k.consumer)
    policy = RoutePolicy(default_ttl=config.default_ttl, heuristic=config.heuristic,
                         swr=config.stale_while_revalidate, sie=config.stale_if_error,
                         max_ttl=config.max_ttl)
    rules = tuple(PurgeRule(r.path, tuple(r.methods), tuple(r.keys), tuple(r.prefixes),
                            tuple(r.tags)) for r in config.purge_on)
    max_entry = config.max_entry_size if config.max_entry_size is not None else 2**62
    made = Cache(tier=runtime.tier, key=spec, policy=policy, route_max_entry=max_entry,
                 lock_timeout=config.lock_timeout, rules=rules)
    p = config.prewarm
    if p is not None:
        made.prewarm = (p.upstream, p.host, tuple(p.paths))
    return made


def _upstreams(config: CacheFilterConfig) -> list[tuple[str, str]]:
    return [] if config.prewarm is None else [("prewarm.upstream", config.prewarm.upstream)]


register("cache", CacheFilterConfig, _make, upstreams=_upstreams)
