"""ApiKeys: admits requests whose API key is known to Redis (a filter that waits, sometimes).

The key comes from a header (`x-api-key`). A key seen recently is answered from an in-process
cache without waiting; otherwise the filter returns a coroutine and the exchange waits for it:
it looks the key up in Redis (`HGET api-keys KEY` gives the account name), caches the answer
(known or not) for `ttl`, and admits or refuses. The account goes upstream in
`x-account`; the key itself is removed so the upstream never sees it.

    filters:
      keys:
        python: "api_keys:ApiKeys"
        config: {redis: "redis://127.0.0.1:6379/0", ttl: 30s}
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass

import redis.asyncio as aioredis

from edgeward.filters import Filter, Reply, Request
from edgeward.values import Duration


@dataclass(frozen=True, kw_only=True)
class ApiKeysConfig:
    redis: str
    header: str = "x-api-key"
    hash_key: str = "api-keys"
    ttl: Duration = 30.0
    max_cached: int = 10_000


class ApiKeys(Filter):
    def __init__(self, config: ApiKeysConfig) -> None:
        self.config = config
        self.client = aioredis.from_url(config.redis, decode_responses=True)
        self.cache: dict[str, tuple[float, str | None]] = {}  # key -> (expires, account)

    def on_request(self, req: Request) -> Reply | None | Awaitable[Reply | None]:
        key = req.headers.get(self.config.header)
        if not key:
            return Reply.error(401, "api_key_missing", f"send your key in {self.config.header}",
                               headers={"www-authenticate": "ApiKey"})
        req.headers.remove(self.config.header)
        hit = self.cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return self._decide(req, hit[1])
        return self._lookup(req, key)  # a coroutine: the chain waits for it

    async def _lookup(self, req: Request, key: str) -> Reply | None:
        account = await self.client.hget(self.config.hash_key, key)
        if len(self.cache) >= self.config.max_cached:
            self.cache.clear()
        self.cache[key] = (time.monotonic() + self.config.ttl, account)
        return self._decide(req, account)

    def _decide(self, req: Request, account: str | None) -> Reply | None:
        if account is None:
            return Reply.error(401, "api_key_unknown", "this API key is not known")
        req.headers.set("x-account", account)
        return None
