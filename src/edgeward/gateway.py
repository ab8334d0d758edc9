"""One worker process: its event loop, listener, snapshot in force, and graceful drain.

`serve()` runs a worker in this process; `supervise()` forks N workers sharing the port with
SO_REUSEPORT, restarts any that die, and passes SIGTERM/SIGINT on for a graceful drain.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable

import uvloop

from edgeward.http.h2.limits import H2Limits
from edgeward.http.h2.select import connection_factory
from edgeward.http.h2.server import H2Connection
from edgeward.http.listener import Connection, ListenerSettings, ListenerState
from edgeward.http.tunnel import ENDED_SHUTDOWN, GOING_AWAY_GRACE, Tunnel
from edgeward.http.ws_endpoint import WebSocket
from edgeward.proxy.factory import ExchangeFactory
from edgeward.proxy.snapshot import Snapshot

log = logging.getLogger("edgeward")

# How often idle upstream connections are checked against their idle timeout.
SWEEP_INTERVAL = 1.0
# Accept queue length; nginx uses 511 on Linux, proxybench's nginx 4096. Load bursts of many
# new connections should queue rather than be refused.
BACKLOG = 4096
# The signals that stop a gateway gracefully. From before the listening socket is bound until
# a worker's loop handles them they are held (blocked): one that comes while a worker starts
# (in plain Python that takes a while) then drains it like any other, instead of killing the
# process with the connections the kernel already queued on its socket.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def hold_stop_signals() -> None:
    """Block STOP_SIGNALS in this process (and the workers it forks) until `serve` handles
    them; call it before binding the listening socket."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def release_stop_signals() -> None:
    """Deliver the stop signals again (one held meanwhile comes now)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def bind_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def bind_problem(host: str, port: int, exc: OSError) -> str:
    """`127.0.0.1:8080: address already in use`, from the OSError of a bind."""
    shown = f"[{host}]" if ":" in host else host
    # asyncio's create_server wraps the message ("error while attempting to bind on ..."):
    # the errno's own text is what the user needs.
    reason = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
    if exc.errno == errno.EACCES and port < 1024:
        reason += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    return f"{shown}:{port}: {reason}"


# The H2Limits fields a client was told in SETTINGS or that its connection's codec holds.
H2_LIMIT_FIELDS = (
    "max_concurrent_streams", "initial_stream_window", "initial_connection_window",
    "max_continuations", "hpack_table_size", "max_header_bytes", "max_headers",
    "max_reset_ratio", "reset_min_streams", "max_streams_per_read", "glitch_burst",
    "glitch_rate", "max_outbound_control",
)


def h2_limits_changed(old: H2Limits | None, new: H2Limits | None) -> bool:
    """Whether a reload changed what open HTTP/2 connections were set up with."""
    if old is None or new is None:
        return old is not new
    return any(getattr(old, name) != getattr(new, name) for name in H2_LIMIT_FIELDS)


class Worker:
    """The listener and snapshot of one process; `swap` installs a new snapshot atomically."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        settings: ListenerSettings,
        snapshot: Snapshot,
        *,
        drain_timeout: float,
    ) -> None:
        self.loop = loop
        self.factory = ExchangeFactory(snapshot, settings)
        # The default listener state; listeners with their own (TLS, redirects) add theirs.
        self.state = ListenerState(settings, self.factory)
        self.states: list[ListenerState] = [self.state]
        self.drain_timeout = drain_timeout
        self.servers: list[asyncio.base_events.Server] = []
        self._sweeper: asyncio.Task[None] | None = None
        self.stopped = asyncio.Event()
        self.on_stop: list[Callable[[], Awaitable[None]]] = []

    @property
    def snapshot(self) -> Snapshot:
        return self.factory.snapshot

    def swap(self, snapshot: Snapshot) -> Snapshot:
        old, self.factory.snapshot = self.factory.snapshot, snapshot
        self._retire_tunnels(snapshot)
        return old

    def _retire_tunnels(self, snapshot: Snapshot) -> None:
        """Tunnels keep the settings they started with, as requests in flight keep their
        snapshot; those whose route no longer takes WebSocket (removed, renamed, or without
        `websocket:`) get their close frames 1001 after drain_timeout, as on shutdown."""
        tunnels = self._tunnels()
        if not tunnels:
            return
        allowed = {r.name for r in snapshot.routes if r.websocket is not None}
        for tunnel in tunnels:
            if tunnel.stats.route not in allowed:
                tunnel.retire(self.drain_timeout)

    def apply_settings(self, settings: ListenerSettings) -> None:
        """New listener limits for the requests read from now on. HTTP/2 connections keep
        the limits they announced in their SETTINGS: when `server.http2` changed, each gets
        GOAWAY (its streams in flight finish) and the client reconnects under the new ones."""
        changed = h2_limits_changed(self.state.settings.http2, settings.http2)
        for state in self.states:
            state.settings = settings
        self.factory.settings = settings
        if changed:
            for conn in self._connections():
                if isinstance(conn, H2Connection):
                    conn.close_if_idle()

    def connection_count(self) -> int:
        return sum(len(state.connections) for state in self.states)

    def underscore_headers(self) -> int:
        return sum(state.underscore_headers for state in self.states)

    def refused_connections(self) -> int:
        return sum(state.refused_connections for state in self.states)

    def h2_closed(self, reason: str) -> int:
        """HTTP/2 connections ended for `reason` (http/h2/limits.py REASONS)."""
        return sum(state.h2_closed.get(reason, 0) for state in self.states)

    async def listen(self, sock: socket.socket, state: ListenerState | None = None, *,
                     tls: ssl.SSLContext | None = None) -> asyncio.base_events.Server:
        """Serve `sock` with `state` (default: the worker's plain listener state); over TLS
        with `tls`, where a client gets server.header_timeout to finish its handshake."""
        state = state or self.state
        if state not in self.states:
            self.states.append(state)
        loop = self.loop
        # The connection is a protocol by shape (asyncio calls it by name), not by class.
        server = await loop.create_server(
            connection_factory(state, loop, tls is not None), sock=sock,  # type: ignore[arg-type]
            backlog=BACKLOG, ssl=tls,
            ssl_handshake_timeout=state.settings.header_timeout if tls is not None else None)
        self.servers.append(server)
        if self._sweeper is None:
            self._sweeper = loop.create_task(self._sweep())
        return server

    def retire(self, server: asyncio.base_events.Server) -> None:
        """Stop accepting on `server` (replaced by another on the same socket); its open
        connections carry on."""
        if server in self.servers:
            self.servers.remove(server)
        server.close()

    def _connections(self) -> list[Connection]:
        return [conn for state in self.states for conn in state.connections]

    def _tunnels(self) -> list[Tunnel | WebSocket]:
        """Open tunnels and WebSocket connections filters accepted (drained alike)."""
        found: list[Tunnel | WebSocket] = []
        for state in self.states:
            found.extend(state.tunnels)
            found.extend(state.endpoints)
        return found

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = self.loop.time()
            for cluster in self.factory.snapshot.clusters.values():
                cluster.sweep(now)

    async def drain(self) -> None:
        """Stop accepting, let in-flight requests and WebSocket tunnels finish (up to
        drain_timeout); then tunnels get a close frame 1001 both ways (up to GOING_AWAY_GRACE
        more), and what is left is closed."""
        if self.state.draining:
            return
        for state in self.states:
            state.draining = True
        for server in self.servers:
            server.close()
        for conn in self._connections():
            conn.close_if_idle()
        deadline = self.loop.time() + self.drain_timeout
        while (self.connection_count() or self._tunnels()) and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self._tunnels():
            for tunnel in self._tunnels():
                tunnel.go_away(ENDED_SHUTDOWN)
            deadline = self.loop.time() + GOING_AWAY_GRACE + 0.5
            while self._tunnels() and self.loop.time() < deadline:
                await asyncio.sleep(0.05)
            for tunnel in self._tunnels():
                tunnel.abort()
        for conn in self._connections():
            conn.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for cluster in self.factory.snapshot.clusters.values():
            cluster.close()
        for hook in self.on_stop:
            try:
                await hook()
            except Exception:  # a failing watcher must not keep the process alive
                log.exception("while stopping")
        self.stopped.set()


StartHook = Callable[[Worker], Awaitable[None]]


def serve(
    build: Callable[[asyncio.AbstractEventLoop], tuple[ListenerSettings, Snapshot, float]],
    sockets: list[socket.socket],
    *,
    on_start: StartHook | None = None,
    on_listen: Callable[[Worker, list[socket.socket]], Awaitable[None]] | None = None,
) -> int:
    """Run one worker until SIGTERM/SIGINT has drained it. Returns the exit status."""
    uvloop.install()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    started: list[Worker] = []  # the worker, once it serves
    stop = asyncio.Event()

    def on_stop_signal() -> None:
        if started:
            loop.create_task(started[0].drain())
        stop.set()  # a signal during start-up drains the worker as soon as it serves

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_stop_signal)

    async def main() -> None:
        # The loop runs, so it handles them (uvloop listens for signals once it runs): a
        # signal held since before the socket was bound (hold_stop_signals) comes now.
        release_stop_signals()
        settings, snapshot, drain_timeout = build(loop)
        worker = Worker(loop, settings, snapshot, drain_timeout=drain_timeout)
        if on_listen is not None:
            await on_listen(worker, sockets)
        else:
            for sock in sockets:
                await worker.listen(sock)
        if on_start is not None:
            await on_start(worker)
        started.append(worker)
        tune_gc()
        if stop.is_set():
            loop.create_task(worker.drain())
        await worker.stopped.wait()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return 0


# The request path creates no reference cycles (refcounting frees everything), so the cyclic
# collector only costs: with CPython's default gen0 threshold of 700 it ran often enough to
# take about a fifth of the per-request CPU. Startup objects are frozen out of its scans and
# young collections run every 100,000 net allocations instead (Instagram's and uWSGI's
# practice); anything cyclic is still collected.
GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def supervise(workers: int, run_one: Callable[[], int],
              on_stop: Callable[[], object] | None = None) -> int:
    """Fork `workers` processes running `run_one`; restart crashed ones; drain on signal."""
    children: dict[int, int] = {}
    stopping = False

    def spawn(slot: int) -> None:
        hold_stop_signals()  # the worker gets them once its loop handles them (serve)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker's loop takes it
            os.environ["EDGEWARD_WORKER"] = str(slot)
            code = 1
            try:
                code = run_one()
            except Exception as exc:  # one line, not lost with the process
                print(f"edgeward: worker {slot}: {exc}", file=sys.stderr, flush=True)
            finally:
                os._exit(code)
        children[pid] = slot

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        if on_stop is not None:
            on_stop()
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def on_hangup(signum: int, frame: object) -> None:
        # Each worker reloads its config and reopens its logs (docs/deploy.md, "Reloads").
        for pid in children:
            try:
                os.kill(pid, signal.SIGHUP)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    for slot in range(workers):
        spawn(slot)
    # Only now: a stop signal held meanwhile reaches every worker, and the sockets (each with
    # its queued clients) are closed here only when every worker holds its own.
    release_stop_signals()
    status = 0
    while children:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        slot = children.pop(pid, -1)
        if slot < 0:
            continue
        if not stopping:
            log.error("worker %d (pid %d) exited with %d; restarting", slot, pid, code)
            time.sleep(0.1)
            spawn(slot)
            release_stop_signals()
        elif os.waitstatus_to_exitcode(code) != 0:
            status = 1
    return status

