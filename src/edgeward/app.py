"""A worker serving a config: the data plane plus its watchers, admin API and telemetry."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from edgeward.gateway import Worker, bind_problem, serve
from edgeward.http.listener import ListenerSettings
from edgeward.listening import Listeners
from edgeward.observe.gateway_metrics import GatewayMetrics
from edgeward.proxy.snapshot import Snapshot
from edgeward.proxy.telemetry import Telemetry
from edgeward.runtime import ConfigRuntime
from edgeward.sections import Sections, listener_settings
from edgeward.structs import ConfigError, Problem

if TYPE_CHECKING:
    from edgeward.config.schema import GatewayConfig
    from edgeward.control import Control

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
    tls_secrets: Mapping[tuple[str, int], bytes] | None = None,
) -> int:
    """Serve `text` on `sockets` (one per listener of the config, in order)."""
    holder: dict[str, ConfigRuntime] = {}
    listeners: list[Listeners] = []

    async def on_listen(worker: Worker, socks: list[socket.socket]) -> None:
        served = Listeners(worker, tls_secrets or {})
        await served.start(holder["runtime"].config, socks)
        listeners.append(served)

    def build(loop: asyncio.AbstractEventLoop) -> tuple[ListenerSettings, Snapshot, float]:
        runtime = ConfigRuntime(text, label, loop)
        holder["runtime"] = runtime
        cfg = runtime.config
        return listener_settings(cfg), runtime.snapshot, cfg.server.drain_timeout

    async def on_start(worker: Worker) -> None:
        from edgeward.control import Control
        from edgeward.hangup import Hangup

        runtime = holder["runtime"]
        runtime.attach(worker)
        served = listeners[0]
        runtime.checks.append(served.check)
        runtime.listeners.append(served.apply)
        worker.on_stop.append(served.close)
        cfg = runtime.config
        access_log, tracer = Sections.observers(cfg)
        telemetry = Telemetry(GatewayMetrics(), access_log, tracer)
        sections = Sections(worker, telemetry, dict(os.environ))
        sections.install(access_log, tracer)
        worker.factory.on_done = telemetry.exchange_done
        worker.factory.on_filter_error = telemetry.filter_failed
        control = Control(worker, runtime, telemetry, worker_id=worker_id, workers=workers,
                          metrics_dir=metrics_dir)
        control.tls_expiry = listeners[0].expiry
        await control.start()
        worker.on_stop.append(control.stop)
        if cfg.admin is not None:
            await _start_admin(control, cfg, sections, label, workers)
        runtime.checks.append(sections.check)
        runtime.listeners.append(sections.apply)
        worker.on_stop.append(sections.close)
        if before is not None:
            before()
        if watch is not None:
            await _watch(control, watch)

        worker.loop.add_signal_handler(signal.SIGHUP, Hangup(control, sections).handle)

    return serve(build, sockets, on_start=on_start, on_listen=on_listen)


async def _start_admin(control: Control, cfg: GatewayConfig, sections: Sections, label: str,
                       workers: int) -> None:
    """The admin API of one worker (its port shared by the workers through SO_REUSEPORT); a
    port that cannot be bound refuses the config with the address."""
    from edgeward.admin.server import AdminServer

    assert cfg.admin is not None
    admin = AdminServer.from_config(control, cfg.admin, sections.environ)
    host, port = cfg.admin.listen
    try:
        await admin.start(host, port, reuse_port=workers > 1)
    except OSError as exc:
        raise ConfigError(label, [Problem("admin.listen", bind_problem(host, port, exc))]
                          ) from None
    sections.admin = admin
    control.worker.on_stop.append(admin.close)


async def _watch(control: Control, location: str) -> None:
    """Follow the config source at `location`: each new text is offered to `control`."""
    from edgeward.config.sources import open_source

    source = open_source(location)
    try:
        await source.load()
    except OSError as exc:
        # The worker already runs the config it was started with and accepts clients, so a
        # transient failure here (EMFILE while clients hold every descriptor) must not end it:
        # the watch takes the file as it finds it on its first readable poll.
        log.warning("config %s unreadable at start, watching it from its next change: %s",
                    location, exc)
    source.watch(lambda new_text: control.on_source_change(new_text))
    control.source = source
    control.worker.on_stop.append(source.close)
