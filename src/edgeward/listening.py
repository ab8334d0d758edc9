"""The listeners of one worker: each socket with its listener state, plain or TLS.

A listener's state says what its connections share beyond the `server:` limits: the scheme
(`https` on TLS), the Strict-Transport-Security line (`hsts`), how a verified client
certificate is read (mTLS), and its exchange maker (the worker's, or one that answers ACME
HTTP-01 challenges and the `https_redirect` first).

On a config reload (`check` then `apply`, registered with ConfigRuntime), a listener whose
keys changed gets a new state and a new asyncio server on a duplicate of the same socket;
the old server stops accepting and its open connections finish as they are. A TLS listener
whose `tls:` changed has its certificates read and validated in `check`, so a bad file
refuses the config with its key path and the old certificates keep serving. Changing the
listener addresses needs a restart (sections.restart_problems).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import ClassVar

from edgeward.config.listeners import ListenerConfig
from edgeward.config.schema import GatewayConfig
from edgeward.filters.api import ORDER_RESPOND, Filter, Reply, Request, RequestResult
from edgeward.filters.reply import Redirect, RedirectTarget
from edgeward.gateway import Worker
from edgeward.http.listener import ListenerState
from edgeward.proxy.chain import Chain
from edgeward.proxy.factory import ListenerFactory
from edgeward.proxy.route import Route
from edgeward.proxy.snapshot import Snapshot
from edgeward.structs import Problem
from edgeward.tls.acme.challenges import ChallengeResponder
from edgeward.tls.certs import TlsError
from edgeward.tls.config import TlsListenerConfig
from edgeward.tls.peer import client_cert
from edgeward.tls.serving import TlsServing
from edgeward.tls.tickets import new_secret

log = logging.getLogger("edgeward.listeners")

Address = tuple[str, int]


class AcmeHttp01(Filter):
    """Answers ACME HTTP-01 challenges (RFC 8555 8.3) from the worker's open challenges."""

    order: ClassVar[int] = ORDER_RESPOND

    def __init__(self, responder: ChallengeResponder) -> None:
        self.name = "acme_http01"
        self.responder = responder

    def on_request(self, req: Request) -> RequestResult:
        answer = self.responder.http01_path_response(req.path)
        if answer is None:
            return Reply.error(404, "route_not_found", "no ACME challenge open for this token")
        return Reply(200, answer, {"content-type": "application/octet-stream"})


def offered(tls: TlsListenerConfig, http2: bool) -> TlsListenerConfig:
    """The listener's TLS settings as served: without h2 in ALPN when HTTP/2 is off."""
    if http2 or "h2" not in tls.alpn:
        return tls
    return replace(tls, alpn=[p for p in tls.alpn if p != "h2"] or ["http/1.1"])


def fixed_snapshot(name: str, f: Filter) -> Snapshot:
    """A snapshot with one route that every request takes, ending in `f`."""
    route = Route(name, cluster=None, chain=Chain([f]), timeout=None)
    return Snapshot(lambda head: route, [route], {})


def redirect_snapshot(lc: ListenerConfig) -> Snapshot:
    # 308 keeps the method and body (RFC 9110 15.4.9); Envoy's https_redirect answers 301,
    # which turns a POST into a GET in most clients.
    target = RedirectTarget(scheme="https", port=lc.https_port)
    return fixed_snapshot("https_redirect", Redirect(308, target, False))


@dataclass(eq=False)
class LiveListener:
    """One listener of this worker: its socket, config, state, server and TLS."""

    path: str
    cfg: ListenerConfig
    sock: socket.socket
    state: ListenerState
    server: asyncio.base_events.Server | None = None
    tls: TlsServing | None = None


class Listeners:
    """Every listener of a worker, started from a config and changed by reloads."""

    def __init__(self, worker: Worker, secrets: Mapping[Address, bytes]) -> None:
        self.worker = worker
        self.secrets = dict(secrets)  # per address, made before fork: shared ticket keys
        self.responder = ChallengeResponder()
        self.acme = fixed_snapshot("acme_http01", AcmeHttp01(self.responder))
        self.served: list[LiveListener] = []
        self._opened: dict[str, TlsServing] = {}  # validated by check, used by apply
        self.lock: object | None = None
        # A TLS listener obtains its certificate by ACME: the plain listeners answer HTTP-01.
        self.acme_wanted = False

    # start-up -------------------------------------------------------------------------------
    async def start(self, cfg: GatewayConfig, sockets: list[socket.socket]) -> None:
        """Serve every listener of `cfg`; `sockets` are bound in the same order."""
        now = time.time()
        self.lock = _acme_lock(cfg)
        self.acme_wanted = _wants_acme(cfg)
        for (path, lc), sock in zip(cfg.served_listeners(), sockets, strict=True):
            tls = self._open(path, lc, now, cfg) if lc.tls is not None else None
            state = self._state(lc, tls, first=not self.served)
            await self._serve(LiveListener(path, lc, sock, state, tls=tls))

    def _open(self, path: str, lc: ListenerConfig, now: float,
              cfg: GatewayConfig) -> TlsServing:
        assert lc.tls is not None
        secret = self.secrets.setdefault(lc.address, new_secret())
        return TlsServing.open(offered(lc.tls, cfg.server.http2.enabled), f"{path}.tls",
                               secret, now, self.responder)

    def _state(self, lc: ListenerConfig, tls: TlsServing | None, *, first: bool) -> ListenerState:
        worker = self.worker
        acme = self.acme if lc.tls is None and self.acme_wanted else None
        only = redirect_snapshot(lc) if lc.https_redirect else None
        plain = lc.tls is None and acme is None and only is None
        if plain and first:
            return worker.state  # the worker's own: what a config without listeners had
        factory = (ListenerFactory(worker.factory, acme=acme, only=only)
                   if acme is not None or only is not None else worker.factory)
        peer = (client_cert if lc.tls is not None and lc.tls.client_auth != "none" else None)
        line = (b"strict-transport-security: " + lc.hsts.encode("ascii") + b"\r\n"
                if lc.hsts else b"")
        return ListenerState(worker.state.settings, factory,
                             scheme="http" if lc.tls is None else "https",
                             response_line=line, peer_cert=peer)

    async def _serve(self, served: LiveListener) -> None:
        tls = served.tls
        served.server = await self.worker.listen(
            served.sock, served.state, tls=tls.store.front if tls is not None else None)
        if tls is not None:
            tls.start(self.worker.loop, self.lock)
        self.served.append(served)

    # reloads --------------------------------------------------------------------------------
    def check(self, old: GatewayConfig, new: GatewayConfig) -> list[Problem]:
        """Read and validate the certificates of every TLS listener whose keys changed."""
        self._opened.clear()
        current = {s.path: s for s in self.served}
        problems: list[Problem] = []
        now = time.time()
        for path, lc in new.served_listeners():
            had = current.get(path)
            if lc.tls is None or (had is not None and had.cfg.tls == lc.tls):
                continue
            try:
                self._opened[path] = self._open(path, lc, now, new)
            except TlsError as exc:
                problems.extend(exc.problems)
        return problems

    def apply(self, old: GatewayConfig, new: GatewayConfig) -> None:
        """Serve the listeners whose keys changed with a new state (and certificates)."""
        wants = _wants_acme(new)
        acme_changed, self.acme_wanted = wants != self.acme_wanted, wants
        # The handshake timeout is server.header_timeout, fixed when a TLS server starts.
        handshake = new.server.header_timeout != old.server.header_timeout
        changed = [(i, lc) for i, ((path, lc), s) in enumerate(
            zip(new.served_listeners(), self.served, strict=True))
            if lc != s.cfg or (acme_changed and lc.tls is None)
            or (handshake and lc.tls is not None)]
        if changed:
            self.worker.loop.create_task(self._replace(changed))

    async def _replace(self, changed: list[tuple[int, ListenerConfig]]) -> None:
        for i, lc in changed:
            old = self.served[i]
            tls = self._opened.pop(old.path, None) if lc.tls is not None else None
            if lc.tls is not None and tls is None:
                tls = old.tls  # only other keys changed: the certificates stay
                old.tls = None
            state = self._state(lc, tls, first=old.state is self.worker.state)
            fresh = LiveListener(old.path, lc, old.sock.dup(), state, tls=tls)
            served = await self.worker.listen(
                fresh.sock, state, tls=tls.store.front if tls is not None else None)
            fresh.server = served
            if tls is not None and not tls.tasks:
                tls.start(self.worker.loop, self.lock)
            self.served[i] = fresh
            if old.server is not None:
                self.worker.retire(old.server)
            if old.tls is not None:
                await old.tls.close()
            log.info("%s: %s reloaded", old.path, _describe(lc))
        self._forget_retired()

    def _forget_retired(self) -> None:
        """Drop the states of replaced listeners once their last connection has closed (the
        drain counts connections through them meanwhile)."""
        live = {id(s.state) for s in self.served}
        worker = self.worker
        worker.states = [st for st in worker.states
                         if st is worker.state or id(st) in live or st.connections]

    def expiry(self) -> list[dict[str, float]]:
        """Seconds until each served name's certificate expires, per TLS listener."""
        now = time.time()
        return [s.tls.store.expiry(now) for s in self.served if s.tls is not None]

    async def close(self) -> None:
        for served in self.served:
            if served.tls is not None:
                await served.tls.close()


def _describe(lc: ListenerConfig) -> str:
    host, port = lc.address
    return f"{'https' if lc.tls else 'http'}://{host}:{port}"


def _wants_acme(cfg: GatewayConfig) -> bool:
    return any(lc.tls is not None and lc.tls.acme is not None
               for _, lc in cfg.served_listeners())


def _acme_lock(cfg: GatewayConfig) -> object | None:
    """The Redis order lock when a listener's acme asks for it (else None: the file lock)."""
    if cfg.redis is None or not any(
            lc.tls is not None and lc.tls.acme is not None and lc.tls.acme.lock == "redis"
            for _, lc in cfg.served_listeners()):
        return None
    from edgeward.ratelimit.redis_store import connect
    from edgeward.tls.acme.lock import RedisOrderLock

    return RedisOrderLock(connect(cfg.redis))
