"""A TLS listener's certificates kept in service: file reloads, ticket key rotation, ACME.

    serving = TlsServing.open(cfg, "listeners[0].tls", secret, time.time())  # TlsError if bad
    server = await loop.create_server(factory, sock=sock, ssl=serving.store.front, ...)
    serving.start(loop)          # the watch, ticket and ACME tasks of this worker
    ...
    await serving.close()

Every worker runs its own: it polls the certificate files every `watch_interval` (a pair that
fails validation is logged and the old one keeps serving), installs the session ticket key of
the current period from the secret every worker shares (tls/tickets.py) and again at each
rotation, and, with `acme:`, keeps the ACME certificate obtained and renewed. The HTTP-01
answers live in `responder`, which the plain listeners of the worker consult.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from edgeward.tls.acme.challenges import ChallengeResponder
from edgeward.tls.certs import TlsError
from edgeward.tls.config import TlsListenerConfig
from edgeward.tls.store import CertificateStore, Reloaded
from edgeward.tls.tickets import TicketKeys, TicketSchedule, read_secret

log = logging.getLogger("edgeward.tls")

# A failing ACME step (the CA unreachable before any backoff applies) is tried again no
# sooner than this, so a broken network never spins the loop.
MIN_ACME_WAIT = 1.0


def ticket_secret(cfg: TlsListenerConfig, path: str, inherited: bytes) -> bytes:
    """The secret ticket keys derive from: the key file's, else the one made before fork."""
    if cfg.session_ticket_key_file is not None:
        return read_secret(cfg.session_ticket_key_file, f"{path}.session_ticket_key_file")
    return inherited


class TlsServing:
    """The certificate store of one TLS listener in one worker, and what keeps it fresh."""

    def __init__(self, store: CertificateStore, tickets: TicketKeys | None,
                 responder: ChallengeResponder) -> None:
        self.store = store
        self.tickets = tickets
        self.responder = responder
        self.tasks: list[asyncio.Task[None]] = []
        self.on_reload: Callable[[Reloaded], None] = _log_reload

    @classmethod
    def open(cls, cfg: TlsListenerConfig, path: str, secret: bytes, now: float,
             responder: ChallengeResponder | None = None) -> TlsServing:
        """Load and validate every certificate; TlsError lists every problem found."""
        problems = []
        try:
            store = CertificateStore.open(cfg, path, now)
        except TlsError as exc:
            problems.extend(exc.problems)
        tickets: TicketKeys | None = None
        if cfg.session_tickets:
            try:
                tickets = TicketKeys(TicketSchedule.every(ticket_secret(cfg, path, secret),
                                                          cfg.session_ticket_rotation))
            except TlsError as exc:
                problems.extend(exc.problems)
        if problems:
            raise TlsError(problems)
        responder = responder or ChallengeResponder()
        if cfg.acme is not None:
            store.challenge = responder.tls_alpn_context
        serving = cls(store, tickets, responder)
        serving.rotate(now)
        return serving

    def rotate(self, now: float) -> float | None:
        """Install the ticket key in force at `now`; when to call again (None: never)."""
        if self.tickets is None:
            return None
        wake = self.tickets.apply(self.store.front, now)
        if wake is None:
            log.warning("%s: session ticket keys cannot be shared by the workers (%s); each "
                        "context keeps OpenSSL's own key", self.store.path,
                        self.tickets.unsupported)
        return wake

    def poll(self, now: float) -> list[Reloaded]:
        results = self.store.poll(now)
        for result in results:
            self.on_reload(result)
        return results

    # the shell ------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop, lock: object | None = None) -> None:
        self.tasks.append(loop.create_task(self._watch()))
        if self.tickets is not None:
            self.tasks.append(loop.create_task(self._rotate()))
        if self.store.cfg.acme is not None:
            self.tasks.append(loop.create_task(self._acme(lock)))

    async def _watch(self) -> None:
        interval = self.store.cfg.watch_interval
        while True:
            await asyncio.sleep(interval)
            try:
                self.poll(time.time())
            except Exception:  # a reload bug must not end the watch of the other files
                log.exception("%s: certificate reload failed", self.store.path)

    async def _rotate(self) -> None:
        while True:
            wake = self.rotate(time.time())
            if wake is None:
                return
            await asyncio.sleep(max(0.0, wake - time.time()))

    async def _acme(self, lock: object | None) -> None:
        from edgeward.tls.acme.manager import AcmeManager

        acme = self.store.cfg.acme
        assert acme is not None
        manager = AcmeManager.create(acme, responder=self.responder, store=self.store,
                                     lock=lock)  # type: ignore[arg-type]
        while True:
            try:
                wake = await manager.step(time.time())
            except Exception:
                log.exception("%s.acme: step failed", self.store.path)
                wake = time.time() + acme.retry_base
            last = manager.last
            if last.what in ("obtained", "renewed", "loaded"):
                log.info("%s.acme: %s %s", self.store.path, last.what, last.detail)
            elif last.what == "failed":
                log.error("%s.acme: order failed (%d in a row): %s", self.store.path,
                          last.failures, last.detail)
            await asyncio.sleep(max(MIN_ACME_WAIT, wake - time.time()))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self.tasks.clear()


def _log_reload(result: Reloaded) -> None:
    if result.ok:
        log.info("%s: reloaded (%s)", result.path, ", ".join(result.names) or "CAs")
        return
    for problem in result.problems:
        log.error("%s: %s (the certificate in service keeps serving)", problem.path,
                  problem.reason)
