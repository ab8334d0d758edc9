"""A worker serving a config: the data plane plus its watchers, admin API and telemetry."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from edgeward.gateway import Worker, serve
from edgeward.http.listener import ListenerSettings
from edgeward.observe.access_log import AccessLog
from edgeward.observe.gateway_metrics import GatewayMetrics
from edgeward.proxy.snapshot import Snapshot
from edgeward.proxy.telemetry import Telemetry
from edgeward.proxy.trace import Tracer
from edgeward.runtime import ConfigRuntime, listener_settings

log = logging.getLogger("edgeward")


def serve_config(
    text: str,
    label: str,
    sockets: list[socket.socket],
    *,
    watch: str | None,
    worker_id: int,
    workers: int,
    metrics_dir: str | None = None,
    before: Callable[[], None] | None = None,
) -> int:
    holder: dict[str, ConfigRuntime] = {}

    def build(loop: asyncio.AbstractEventLoop) -> tuple[ListenerSettings, Snapshot, float]:
        runtime = ConfigRuntime(text, label, loop)
        holder["runtime"] = runtime
        cfg = runtime.config
        return listener_settings(cfg), runtime.snapshot, cfg.server.drain_timeout

    async def on_start(worker: Worker) -> None:
        from edgeward.control import Control

        runtime = holder["runtime"]
        runtime.attach(worker)
        cfg = runtime.config
        loop = worker.loop
        access_log = AccessLog(cfg.access_log) if cfg.access_log is not None else None
        if access_log is not None:
            access_log.start()
            loop.add_signal_handler(__import__("signal").SIGHUP, access_log.reopen)
        tracer = None
        if cfg.tracing is not None:
            exporter = cfg.tracing.exporter()
            if exporter is not None:
                exporter.start()
            tracer = Tracer(cfg.tracing.sampler(), exporter)
        telemetry = Telemetry(GatewayMetrics(), access_log, tracer)
        worker.factory.tracer = tracer
        worker.factory.on_done = telemetry.exchange_done
        control = Control(worker, runtime, telemetry, worker_id=worker_id, workers=workers,
                          metrics_dir=metrics_dir)
        await control.start()
        worker.on_stop.append(control.stop)
        if cfg.admin is not None:
            from edgeward.admin.server import AdminServer

            admin = AdminServer.from_config(control, cfg.admin, dict(os.environ))
            host, port = cfg.admin.listen
            await admin.start(host, port, reuse_port=workers > 1)
            worker.on_stop.append(admin.close)
        if access_log is not None:
            worker.on_stop.append(_async(access_log.close))
        if tracer is not None and tracer.exporter is not None:
            worker.on_stop.append(_async(tracer.exporter.shutdown))
        if before is not None:
            before()
        if watch is not None:
            from edgeward.config.sources import open_source

            source = open_source(watch)
            await source.load()
            source.watch(lambda new_text: control.on_source_change(new_text))
            control.source = source
            worker.on_stop.append(source.close)

    return serve(build, sockets, on_start=on_start)


def _async(fn: Callable[[], object]) -> Callable[[], Awaitable[None]]:
    """A blocking close (writer threads flushing) run off the event loop."""
    async def run() -> None:
        await asyncio.get_running_loop().run_in_executor(None, fn)
    return run
