"""A worker serving a config: the data plane plus its watchers, admin API and telemetry."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from edgeward.gateway import Worker, serve
from edgeward.http.server import ListenerSettings
from edgeward.proxy.snapshot import Snapshot
from edgeward.runtime import ConfigRuntime, listener_settings

log = logging.getLogger("edgeward")


def serve_config(
    text: str,
    label: str,
    sockets: list[socket.socket],
    admin_sockets: list[socket.socket],
    *,
    watch: str | None,
    worker_id: int,
    workers: int,
    before: Callable[[], None] | None = None,
) -> int:
    holder: dict[str, ConfigRuntime] = {}

    def build(loop: asyncio.AbstractEventLoop) -> tuple[ListenerSettings, Snapshot, float]:
        runtime = ConfigRuntime(text, label, loop)
        holder["runtime"] = runtime
        cfg = runtime.config
        return listener_settings(cfg), runtime.snapshot, cfg.server.drain_timeout

    async def on_start(worker: Worker) -> None:
        runtime = holder["runtime"]
        runtime.attach(worker)
        if before is not None:
            before()
        if watch is not None:
            from edgeward.config.sources import open_source

            source = open_source(watch)
            await source.load()
            source.watch(lambda new_text: _ignore(runtime.apply(new_text)))
            worker.on_stop.append(source.close)

    return serve(build, sockets, on_start=on_start)


def _ignore(_: object) -> None:
    """Reload results are logged and recorded by the runtime itself."""
