"""The background readers a worker restarts when their part of the config changes: etcd's
consumers (`etcd.consumers_prefix`) and the response cache's purge stream (`cache.fleet`)."""

from __future__ import annotations

import logging
import os

from edgeward.auth.etcd import ConsumerWatcher
from edgeward.cache.fleet import Fleet
from edgeward.cache.runtime import default_node
from edgeward.compose import auth_context, cache_runtime
from edgeward.runtime import ConfigRuntime

log = logging.getLogger("edgeward.control")


class Followers:
    """Started by the worker's `Control`, synced again after every applied reload."""

    def __init__(self, runtime: ConfigRuntime, worker_id: int, workers: int) -> None:
        self.runtime = runtime
        self.worker_id = worker_id
        self.workers = workers
        self.consumers: ConsumerWatcher | None = None
        self._consumers_key: object = None
        self._fleet_key: object = None

    async def sync_consumers(self) -> None:
        """Follow etcd's consumers while `etcd.consumers_prefix` is set (restarted when the
        etcd endpoints or the prefix change)."""
        etcd = self.runtime.config.etcd
        key = (tuple(etcd.endpoints), etcd.consumers_prefix, etcd.timeout, etcd.access) if (
            etcd is not None and etcd.consumers_prefix) else None
        if key == self._consumers_key:
            return
        self._consumers_key = key
        directory = auth_context(self.runtime.registry).consumers
        if self.consumers is not None:
            await self.consumers.close()
            self.consumers = None
            directory.set_dynamic([], {})
        if etcd is None or etcd.consumers_prefix is None:
            return
        self.consumers = ConsumerWatcher(etcd.endpoints, etcd.consumers_prefix, directory,
                                         dict(os.environ), timeout=etcd.timeout,
                                         access=etcd.access)
        try:
            await self.consumers.start()
        except Exception as exc:
            log.error("etcd consumers under %s: %s; retrying in the background",
                      etcd.consumers_prefix, exc)
            self.consumers.retry_in_background()

    async def sync_fleet(self) -> None:
        """Read the cache's purge stream while `cache.fleet` is set (restarted when it or the
        Redis client changes)."""
        cache = cache_runtime(self.runtime.registry)
        cfg = self.runtime.config
        fc = cfg.cache.fleet
        key = (fc, id(cache.redis)) if fc is not None and cache.redis is not None else None
        if key == self._fleet_key:
            return
        self._fleet_key = key
        if cache.fleet is not None:
            await cache.fleet.stop()
            cache.set_fleet(None, "")
        if fc is None or cache.redis is None:
            return
        listeners = cfg.served_listeners()
        listen = str(listeners[0][1].address) if listeners else "none"
        node = fc.node if fc.node is not None else default_node(listen, self.worker_id)
        if fc.node is not None and self.workers > 1:
            node = f"{node}-{self.worker_id}"
        fleet = Fleet(cache.redis, stream=fc.stream, group=node, window=fc.window,
                      apply=cache.from_stream, flush=cache.flush_after_gap)
        cache.set_fleet(fleet, node)
        fleet.start()

    async def close(self) -> None:
        cache = cache_runtime(self.runtime.registry)
        if cache.fleet is not None:
            await cache.fleet.stop()
        if self.consumers is not None:
            await self.consumers.close()
