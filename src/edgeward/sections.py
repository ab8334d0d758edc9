"""The config sections outside the snapshot: `server`, `admin`, `logging`, `access_log`,
`tracing`.

Routes, upstreams and limits are compiled into a snapshot and swapped by `ConfigRuntime`; the
sections here belong to the worker itself. On a reload each is applied at once or, when that
truly needs a new process, the whole config is refused with the key path and the reason, as a
`listen` change is; nothing is accepted and silently ignored (docs/admin.md, "Reloads"):

- `listen`, the `listeners` addresses, adding or removing `admin`, `admin.listen`: refused
  (sockets are bound once). Every other listener key (`tls`, `https_redirect`, `hsts`) is
  applied by listening.py to new connections.
- `server.*`: the listener reads its settings object per event; it is swapped by
  `apply_server`, so limits, timeouts and `trusted_proxies` apply from the next read or
  request; `drain_timeout` from the next drain.
- `admin.token`/`token_env`: the new token is required by the next POST and the old one stops
  working at once; an unset `token_env` variable refuses the config. `admin.hosts` applies at
  once, `max_body`/`max_head`/`idle_timeout` to new connections, `series_*` restarts the
  dashboard series.
- `logging`: the process log's level and format change at once (environment variables set
  at start still win).
- `access_log`, `tracing`: a changed section opens a new writer / starts a new sampler and
  exporter; the old one flushes what it holds and stops, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from edgeward.config.schema import GatewayConfig
from edgeward.gateway import Worker
from edgeward.http.listener import ListenerSettings
from edgeward.observe.access_log import AccessLog
from edgeward.observe.process_log import apply_config
from edgeward.proxy.telemetry import Telemetry
from edgeward.proxy.trace import Tracer
from edgeward.structs import Problem

if TYPE_CHECKING:
    from edgeward.admin.server import AdminServer

log = logging.getLogger("edgeward.sections")

RESTART = "needs a restart (the socket is bound once, at start)"


def listener_settings(cfg: GatewayConfig) -> ListenerSettings:
    s = cfg.server
    return ListenerSettings(
        header_timeout=s.header_timeout,
        idle_timeout=s.idle_timeout,
        body_timeout=s.body_timeout,
        max_request_line=s.max_request_line,
        max_header_bytes=s.max_header_bytes,
        max_headers=s.max_headers,
        max_pipelined=s.max_pipelined,
        trusted_proxies=s.trusted_proxies,
        underscores=s.headers_with_underscores,
        path_normalization=s.path_normalization,
        client_cert_header=s.client_cert_header,
        max_connections=connection_cap(s.max_connections),
        http2=s.http2.limits(s.max_header_bytes, s.max_headers),
    )


def connection_cap(configured: int | None) -> int:
    """`server.max_connections`, or when null the cap the open-file limit allows."""
    if configured is not None:
        return configured
    from edgeward.observe.process import auto_connection_cap, open_files_limit

    return auto_connection_cap(open_files_limit())


def apply_server(worker: Worker, cfg: GatewayConfig) -> None:
    """Swap the listener settings every connection of `worker` reads (the one place that
    knows which attribute the listener reads them from)."""
    worker.apply_settings(listener_settings(cfg))
    worker.drain_timeout = cfg.server.drain_timeout


def restart_problems(old: GatewayConfig, new: GatewayConfig) -> list[Problem]:
    """What a reload from `old` to `new` cannot apply in a running process."""
    problems: list[Problem] = []
    if new.listen != old.listen:
        problems.append(Problem("listen", f"changing the listen address {RESTART}"))
    if [lc.address for lc in new.listeners] != [lc.address for lc in old.listeners]:
        problems.append(Problem("listeners", "adding, removing or moving a listener "
                                             f"(its address) {RESTART}"))
    if (old.admin is None) != (new.admin is None):
        verb = "adding" if new.admin is not None else "removing"
        problems.append(Problem("admin", f"{verb} the admin listener {RESTART}"))
    elif old.admin is not None and new.admin is not None and new.admin.listen != old.admin.listen:
        problems.append(Problem("admin.listen", f"changing the admin listen address {RESTART}"))
    return problems


def open_access_log(cfg: GatewayConfig) -> AccessLog | None:
    if cfg.access_log is None or cfg.access_log.path is None:
        return None
    access_log = AccessLog(cfg.access_log)
    access_log.start()
    return access_log


def start_tracer(cfg: GatewayConfig) -> Tracer | None:
    if cfg.tracing is None:
        return None
    exporter = cfg.tracing.exporter()
    if exporter is not None:
        exporter.start()
    return Tracer(cfg.tracing.sampler(), exporter)


class Sections:
    """Owns the worker's access log, tracer and admin server, and applies their sections."""

    def __init__(self, worker: Worker, telemetry: Telemetry, environ: Mapping[str, str]) -> None:
        self.worker = worker
        self.telemetry = telemetry
        self.environ = environ
        self.admin: AdminServer | None = None

    @staticmethod
    def observers(cfg: GatewayConfig) -> tuple[AccessLog | None, Tracer | None]:
        """The access log and tracer a config asks for, started."""
        return open_access_log(cfg), start_tracer(cfg)

    def install(self, access_log: AccessLog | None, tracer: Tracer | None) -> None:
        self.telemetry.access_log = access_log
        self.telemetry.tracer = tracer
        self.worker.factory.tracer = tracer

    def reopen_logs(self) -> None:
        """SIGHUP: the access log file is reopened (after logrotate moved it)."""
        if self.telemetry.access_log is not None:
            self.telemetry.access_log.reopen()

    def check(self, old: GatewayConfig, new: GatewayConfig) -> list[Problem]:
        """Problems that refuse `new` before anything is swapped, besides `restart_problems`
        (which ConfigRuntime always checks)."""
        problems: list[Problem] = []
        if new.admin is not None:
            try:
                new.admin.resolve_token(self.environ)
            except ValueError as exc:
                problems.append(Problem("admin.token_env", str(exc).partition(": ")[2]))
        return problems

    def apply(self, old: GatewayConfig, new: GatewayConfig) -> None:
        """Apply every section of `new` that differs from `old` (after `check` passed)."""
        apply_server(self.worker, new)
        if new.logging != old.logging:
            apply_config(new.logging.level, new.logging.format)
        if self.admin is not None and new.admin is not None and new.admin != old.admin:
            self.admin.reconfigure(new.admin, self.environ)
        if new.access_log != old.access_log or new.tracing != old.tracing:
            retired_log = self.telemetry.access_log if new.access_log != old.access_log else None
            retired_tracer = self.telemetry.tracer if new.tracing != old.tracing else None
            access_log = (open_access_log(new) if new.access_log != old.access_log
                          else self.telemetry.access_log)
            tracer = start_tracer(new) if new.tracing != old.tracing else self.telemetry.tracer
            self.install(access_log, tracer)
            if retired_log is not None:
                _in_background(retired_log.close)
            if retired_tracer is not None and retired_tracer.exporter is not None:
                _in_background(retired_tracer.exporter.shutdown)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        access_log, tracer = self.telemetry.access_log, self.telemetry.tracer
        if access_log is not None:
            await loop.run_in_executor(None, access_log.close)
        if tracer is not None and tracer.exporter is not None:
            await loop.run_in_executor(None, tracer.exporter.shutdown)


def _in_background(close: Callable[[], None]) -> None:
    """A blocking close (a writer thread flushing) run off the event loop."""
    asyncio.get_running_loop().run_in_executor(None, close)
