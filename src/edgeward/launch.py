"""Serving a config text: validate it, bind the listener, then run it in worker processes.

One worker runs in this process; more are forked (each with its own SO_REUSEPORT socket) and
supervised, and a worker (re)started later begins from the text its watched source holds then,
as the running workers do. The command line (`edgeward run | proxy`) and `edgeward demo` both
serve through here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from edgeward import __version__, _native
from edgeward.structs import ConfigError, Problem

if TYPE_CHECKING:
    from edgeward.config.schema import GatewayConfig

log = logging.getLogger("edgeward")


def run_text(text: str, label: str, workers: int, watch: str | None = None,
             before: Callable[[], None] | None = None) -> int:
    """Validate `text`, bind the listener, then serve it in `workers` processes."""
    from edgeward.config.text import load_text
    from edgeward.gateway import hold_stop_signals, supervise
    from edgeward.observe.process_log import announce, apply_config

    cfg = load_text(text, label)
    secrets = check_tls(cfg, label)
    apply_config(cfg.logging.level, cfg.logging.format)
    served = cfg.served_listeners()
    # A SIGHUP before the worker's loop handles it (reload, reopen logs) must not end the
    # process, as the default action would; a reload reads the current text anyway.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _raise_open_files_limit()
    hold_stop_signals()  # until a worker's loop handles them: start-up is drained too
    # One socket per listener per worker (each worker its own, sharing the port through
    # SO_REUSEPORT), so a worker that drains takes only its own queued clients with it.
    slots = _bind(label, [(path if path == "listen" else f"{path}.address", lc.address)
                          for path, lc in served], workers)
    metrics_dir = None
    if workers > 1:
        from edgeward.observe.exchange import private_directory

        metrics_dir = private_directory()
    urls = []
    for (_, lc), sock in zip(served, slots[0], strict=True):
        host = lc.address[0]
        shown = f"[{host}]" if ":" in host else host
        urls.append(f"{'https' if lc.tls else 'http'}://{shown}:{sock.getsockname()[1]}")
    announce(f"edgeward {__version__} listening on {', '.join(urls)} "
             f"({workers} worker{'s' if workers > 1 else ''}, config {label})",
             event="listening", address=", ".join(urls), workers=workers, config=label)
    plain = _native.note()
    if plain is not None:  # said once, by the process that starts the workers
        announce(plain, event="data_plane", compiled=False, native_build=_native.state)

    every = [s for slot in slots for s in slot]

    def run_one(slot: int) -> int:
        from edgeward.app import serve_config

        own = slots[slot]
        start_text = text
        if workers > 1:
            # Sockets of the other slots must not stay open here, or connections the kernel
            # routes to them would wait after their owner drained.
            for s in every:
                if s not in own:
                    s.close()
            if watch is not None:
                # A worker forked later (a restart after a crash) must serve what the others
                # serve now, not the text the supervisor read at start.
                start_text = _current_text(watch, text, label)
        return serve_config(start_text, label, own, watch=watch, worker_id=slot,
                            workers=workers, metrics_dir=metrics_dir, before=before,
                            tls_secrets=secrets)

    if workers == 1:
        return run_one(0)
    try:
        return supervise(workers,
                         lambda: run_one(int(os.environ.get("EDGEWARD_WORKER", "0"))),
                         on_stop=lambda: _close_all(every))
    finally:
        if metrics_dir is not None:
            import shutil

            shutil.rmtree(metrics_dir, ignore_errors=True)


def check_tls(cfg: GatewayConfig, label: str) -> dict[tuple[str, int], bytes]:
    """Read and validate every TLS listener's certificates before anything is bound (a bad
    file refuses the config with its key path), and make the session ticket secret of each:
    made here, before the workers fork, so they all derive the same ticket keys."""
    import time

    from edgeward.tls.certs import TlsError
    from edgeward.tls.serving import TlsServing
    from edgeward.tls.tickets import new_secret

    secrets: dict[tuple[str, int], bytes] = {}
    problems: list[Problem] = []
    for path, lc in cfg.served_listeners():
        if lc.tls is None:
            continue
        secrets[lc.address] = new_secret()
        try:
            TlsServing.open(lc.tls, f"{path}.tls", secrets[lc.address], time.time())
        except TlsError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(label, problems)
    return secrets


def _current_text(location: str, started: str, label: str) -> str:
    """The watched source's text now, when it is a config the running workers would have
    applied; else `started` (the source is unreadable, invalid, or changes what only a restart
    can change, so the other workers refused it too)."""
    from edgeward.config.sources import open_source
    from edgeward.config.text import load_text
    from edgeward.sections import restart_problems

    async def load() -> str:
        source = open_source(location)
        try:
            return (await source.load())[0]
        finally:
            await source.close()

    try:
        current = asyncio.run(load())
        if current != started:
            problems = restart_problems(load_text(started, label), load_text(current, label))
            if problems:
                raise ConfigError(label, problems)
    except ConfigError as exc:
        log.error("worker start: %s refused, starting from the text read at start: %s",
                  label, "; ".join(exc.lines()))
        return started
    except Exception as exc:  # etcd away, file missing: the watch catches up later
        log.error("worker start: cannot read %s (%s); starting from the text read at start",
                  label, exc)
        return started
    return current


def _raise_open_files_limit() -> None:
    """Before forking, so every worker inherits it (docs/deploy.md, "Limits")."""
    from edgeward.observe.process import raise_open_files_limit

    before, now = raise_open_files_limit()
    if now > before:
        log.info("open files: limit %d (raised from %d, the hard limit)", now, before)
    else:
        log.info("open files: limit %d", now)


def _bind(label: str, addresses: list[tuple[str, tuple[str, int]]],
          workers: int) -> list[list[socket.socket]]:
    """Per worker, one listening socket per (key path, address); a bind failure is a
    ConfigError naming the key and the address (`gw.yaml: listen: 127.0.0.1:8080: address
    already in use`)."""
    from edgeward.gateway import bind_problem, bind_socket

    slots: list[list[socket.socket]] = []
    for _ in range(workers):
        slot: list[socket.socket] = []
        slots.append(slot)
        for path, (host, port) in addresses:
            try:
                slot.append(bind_socket(host, port, reuse_port=workers > 1))
            except OSError as exc:
                _close_all([s for taken in slots for s in taken])
                raise ConfigError(label, [Problem(path, bind_problem(host, port, exc))]
                                  ) from None
    return slots


def _close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()
