"""Keeping one ACME certificate (`tls.acme` of a listener) obtained, renewed and served.

    manager = AcmeManager.create(cfg.acme, responder=responder, store=store, lock=lock)
    while running:
        wake_at = await manager.step(time.time())
        await asyncio.sleep(max(0, wake_at - time.time()))

A step reads the stored certificate (another worker or gateway may have renewed it), asks
`next_action`, and when an attempt is due takes the order lock, reads again, orders, writes
the files and installs the pair in the store. A failed attempt is counted (backoff); the
certificate already served keeps serving. Every outcome is returned in `last`, for the log.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass

from edgeward.tls.acme.challenges import ChallengeResponder
from edgeward.tls.acme.client import AcmeClient, AcmeError
from edgeward.tls.acme.lock import FileOrderLock, OrderLock
from edgeward.tls.acme.schedule import RenewalPolicy, next_action
from edgeward.tls.acme.storage import AcmeStorage, new_certificate_key
from edgeward.tls.acme.transport import Transport, TransportError
from edgeward.tls.certs import CertifiedKey, TlsError, parse_pair
from edgeward.tls.config import AcmeConfig
from edgeward.tls.store import CertificateStore

# When another gateway holds the order lock, look again this soon: its order takes seconds.
LOCKED_RETRY = 30.0


@dataclass(frozen=True)
class Outcome:
    """What the last step did: `what` is obtained, renewed, loaded, locked, failed or idle."""

    what: str
    detail: str = ""
    failures: int = 0


class AcmeManager:
    """One certificate for `cfg.domains`, kept valid."""

    def __init__(self, cfg: AcmeConfig, *, storage: AcmeStorage, client: AcmeClient,
                 responder: ChallengeResponder, lock: OrderLock,
                 store: CertificateStore | None = None) -> None:
        self.cfg = cfg
        self.storage = storage
        self.client = client
        self.responder = responder
        self.lock = lock
        self.store = store
        self.name = cfg.domains[0]
        self.policy = RenewalPolicy(cfg.renew_at, cfg.retry_base, cfg.retry_max)
        self.failures = 0
        self.current: CertifiedKey | None = None
        self.last = Outcome("idle")

    @classmethod
    def create(cls, cfg: AcmeConfig, *, responder: ChallengeResponder,
               store: CertificateStore | None = None, lock: OrderLock | None = None,
               context: ssl.SSLContext | None = None) -> AcmeManager:
        """The manager of `cfg`; the file lock unless `lock` is given (RedisOrderLock)."""
        storage = AcmeStorage(cfg.storage, cfg.directory)
        if context is None:
            context = ssl.create_default_context(cafile=cfg.ca_bundle)
        client = AcmeClient(cfg.directory, storage.account_key(), Transport(context),
                            storage.account_url())
        return cls(cfg, storage=storage, client=client, responder=responder,
                   lock=lock or FileOrderLock(f"{cfg.storage}/locks"), store=store)

    @property
    def store_key(self) -> str:
        return f"acme:{self.name}"

    def _adopt(self, pair: CertifiedKey | None, *, force: bool = False) -> None:
        """Serve `pair` (from disk: only if it is another certificate, lasting no shorter)."""
        cur = self.current
        if pair is None or (not force and cur is not None and (
                pair.leaf == cur.leaf or pair.not_after < cur.not_after)):
            return
        self.current = pair
        if self.store is not None:
            self.store.install(self.store_key, pair)

    def decide(self, now: float) -> tuple[float, str]:
        cur = self.current
        return next_action(now, cur.not_before if cur else None, cur.not_after if cur else None,
                           self.failures, self.policy)

    async def step(self, now: float) -> float:
        """Do what is due at `now` (wall clock); the time of the next step."""
        self._adopt(self.storage.load_certificate(self.name, now))
        when, what = self.decide(now)
        if when > now:
            return when
        lease = await self.lock.acquire(self.name, self.cfg.lock_ttl)
        if lease is None:
            self.last = Outcome("locked", "another gateway is ordering", self.failures)
            return now + LOCKED_RETRY
        try:
            before = self.current
            self._adopt(self.storage.load_certificate(self.name, now))
            if self.current is not before:     # renewed elsewhere while we waited
                self.failures = 0
                self.last = Outcome("loaded", "renewed by another gateway")
                return self.decide(now)[0]
            await self._order(what, now)
        finally:
            await lease.release()
        return self.decide(time.time())[0]

    async def _order(self, what: str, now: float) -> None:
        try:
            if self.client.account_url is None:
                self.storage.save_account_url(await self.client.register(self.cfg.email))
            key = new_certificate_key(self.cfg.key_type)
            chain = await self.client.obtain(list(self.cfg.domains), key, self.responder,
                                             list(self.cfg.challenges))
            pair = parse_pair(chain, _key_pem(key), cert_where="ACME certificate",
                              key_where="ACME key", path=self.store_key, now=time.time())
        except (AcmeError, TransportError, TlsError, KeyError, ValueError) as exc:
            self.failures += 1
            self.last = Outcome("failed", str(exc), self.failures)
            return
        self.storage.save_certificate(self.name, chain, key)
        self.failures = 0
        self._adopt(pair, force=True)
        self.last = Outcome("renewed" if what == "renew" else "obtained", ", ".join(pair.names))


def _key_pem(key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
