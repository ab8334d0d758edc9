"""Only one gateway orders a certificate for a name at a time.

`OrderLock.acquire(name, ttl)` returns a `Lease` or None when another holder has it. The
file lock (flock on STORAGE/locks/NAME.lock) covers the workers of one host: the kernel
drops it when its holder dies, so `ttl` is not needed. The Redis lock (`SET key token NX PX
ttl`, released by a compare-and-delete script) covers hosts sharing a Redis: a holder that
dies leaves it to expire after `ttl`. A lease outliving `ttl` loses the lock silently; the
order itself stays correct (the CA serialises orders), it may only be done twice.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from typing import Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from edgeward.tls.acme.storage import slug

# Compare-and-delete: only the holder's token releases the lock (Redis docs' SET NX pattern).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class Lease(Protocol):
    async def release(self) -> None: ...


class OrderLock(Protocol):
    async def acquire(self, name: str, ttl: float) -> Lease | None: ...


class _FileLease:
    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    async def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class FileOrderLock:
    """flock(2) on a file per name under `folder` (one host)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        os.makedirs(folder, mode=0o700, exist_ok=True)

    async def acquire(self, name: str, ttl: float) -> Lease | None:
        path = os.path.join(self.folder, f"{slug(name)}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return _FileLease(fd)


class _RedisLease:
    def __init__(self, client: aioredis.Redis | RedisCluster, key: str, token: str) -> None:
        self.client, self.key, self.token = client, key, token

    async def release(self) -> None:
        await self.client.eval(_RELEASE, 1, self.key, self.token)


class RedisOrderLock:
    """SET NX PX in Redis (hosts sharing a Redis)."""

    def __init__(self, client: aioredis.Redis | RedisCluster,
                 prefix: str = "edgeward:acme:lock:") -> None:
        self.client = client
        self.prefix = prefix

    async def acquire(self, name: str, ttl: float) -> Lease | None:
        key, token = self.prefix + name, secrets.token_hex(16)
        taken = await self.client.set(key, token, nx=True, px=max(1, int(ttl * 1000)))
        return _RedisLease(self.client, key, token) if taken else None
