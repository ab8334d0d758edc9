"""The redis-py asyncio client for a `redis:` block: one Redis, Sentinel or Cluster.

- One Redis (`url`): `redis://`, `rediss://` (TLS) or `unix://`; user and password from the
  url or from `username`/`password`.
- Sentinel (`sentinel: {master, nodes}`): every new connection asks the Sentinels for the
  master's address, so after a failover the next connection goes to the new master. A limiter
  drops its pooled connections after a failed call, so it reconnects (and asks) on its next
  probe; a connection to a demoted master answers READONLY, which redis-py turns into a
  reconnect too.
- Cluster (`cluster: {nodes}`): redis-py's RedisCluster learns the slot map from the seeds and
  follows MOVED (refreshing the map) and ASK (one ASKING + retry on the importing node) itself.
  The limiter's keys carry a hash tag, so each script touches one slot.

No hidden retries: the per-decision deadline (`redis.timeout`) is applied by the caller around
each call; the socket timeouts here only bound connecting and loading scripts.
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from edgeward.ratelimit.config import RedisConfig
from edgeward.tls.config import StoreTlsConfig

# Connecting and loading scripts at startup may take longer than one decision.
CONNECT_TIMEOUT = 2.0

RedisClient = aioredis.Redis | RedisCluster
STORE_ERRORS = (RedisError, OSError, TimeoutError)


def tls_options(tls: StoreTlsConfig | None, *, enabled: bool) -> dict[str, Any]:
    """redis-py's ssl_* keyword arguments for `tls` (empty when TLS is off)."""
    if not enabled:
        return {}
    cfg = tls if tls is not None else StoreTlsConfig()
    return {
        "ssl": True,
        "ssl_ca_certs": cfg.ca,
        "ssl_certfile": cfg.client_cert,
        "ssl_keyfile": cfg.client_key,
        "ssl_cert_reqs": ssl.CERT_REQUIRED if cfg.verify else ssl.CERT_NONE,
        "ssl_check_hostname": cfg.verify,
    }


def _common(config: RedisConfig) -> dict[str, Any]:
    return {
        "username": config.username,
        "password": config.password,
        "socket_timeout": CONNECT_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
    }


def connect(config: RedisConfig) -> RedisClient:
    """A client for `config` (no I/O until the first command)."""
    if config.cluster is not None:
        return _cluster(config)
    if config.sentinel is not None:
        return _sentinel(config)
    options = _common(config)
    ssl_options = tls_options(config.tls, enabled=config.url.startswith("rediss://"))
    ssl_options.pop("ssl", None)    # the rediss:// scheme selects the TLS connection class
    options = {k: v for k, v in options.items() if v is not None}
    return aioredis.Redis.from_url(
        config.url, retry=Retry(NoBackoff(), 0), **options, **ssl_options)


def _sentinel(config: RedisConfig) -> aioredis.Redis:
    sent = config.sentinel
    assert sent is not None
    tls = tls_options(config.tls, enabled=config.tls is not None)
    sentinel_kwargs = {
        "username": sent.username, "password": sent.password,
        "socket_timeout": CONNECT_TIMEOUT, "socket_connect_timeout": CONNECT_TIMEOUT, **tls,
    }
    sentinel = Sentinel(
        list(sent.nodes), sentinel_kwargs=sentinel_kwargs, **_common(config), **tls)
    client: aioredis.Redis = sentinel.master_for(
        sent.master, db=sent.db, retry=Retry(NoBackoff(), 0))
    return client


def _cluster(config: RedisConfig) -> RedisCluster:
    assert config.cluster is not None
    nodes = [ClusterNode(host, port) for host, port in config.cluster.nodes]
    tls = tls_options(config.tls, enabled=config.tls is not None)
    return RedisCluster(
        startup_nodes=nodes, retry=Retry(NoBackoff(), 0), **_common(config), **tls)


async def disconnect(client: RedisClient) -> None:
    """Drop every pooled connection (after a failure: each would fail once more otherwise).
    A cluster client rebuilds its node connections itself."""
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        with contextlib.suppress(*STORE_ERRORS):
            await pool.disconnect()


def describe(config: RedisConfig) -> str:
    """Where the client goes, for logs: never the password."""
    if config.sentinel is not None:
        nodes = ",".join(f"{h}:{p}" for h, p in config.sentinel.nodes)
        return f"sentinel {config.sentinel.master}@{nodes}"
    if config.cluster is not None:
        return "cluster " + ",".join(f"{h}:{p}" for h, p in config.cluster.nodes)
    from edgeward.redact import redact_url

    return redact_url(config.url)
