"""The certificates a TLS listener serves, chosen by SNI and reloaded when their files change.

    store = CertificateStore.open(cfg, "listeners[0].tls", time.time())   # TlsError if bad
    server = await loop.create_server(factory, host, port, ssl=store.front)
    ... every watch_interval:  for r in store.poll(time.time()): log(r)

`front` is the context every connection starts on. It holds no certificate: its
`sni_callback` moves each handshake to the context of the certificate chosen for the client's
SNI (tls/sni.py). A reload builds new per-certificate contexts off to the side and swaps one
reference (`_selection`); a handshake already moved keeps the context it was given, so
handshakes in progress finish on the old certificate and new ones get the new. A pair that
fails validation is reported (`Reloaded.problems`) and the old one keeps serving.

What `front` carries for the whole connection (OpenSSL copies it into the connection before
SNI is known): protocol versions, cipher list, options (tickets, renegotiation), whether a
client certificate is asked for. What the chosen context carries: the certificate, the CAs
client certificates are verified against, ALPN. Both are built by the same function, so they
agree; a change of any listener setting other than files is a config reload, which builds a
new store (the listener reads `store.front` for each new connection).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Hashable
from dataclasses import dataclass

from edgeward.structs import Problem
from edgeward.tls.certs import CertifiedKey, TlsError
from edgeward.tls.config import DEFAULT_SETTLE, CertificateConfig, TlsListenerConfig
from edgeward.tls.context import pair_context, read_client_ca, server_base, server_context
from edgeward.tls.sni import Chooser, SniTable, sni_callback
from edgeward.tls.watch import FileWatch, Stamp, Stamps

CLIENT_CA = "client_ca"


def file_stamp(file: str) -> Stamp | None:
    """(device, inode, size, mtime_ns) of `file`, or None when it cannot be stat'ed."""
    try:
        st = os.stat(file)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Reloaded:
    """The outcome of reloading one item: the key path, the names now served, the problems
    (empty when the new pair is serving; else the old one still is)."""

    path: str
    names: tuple[str, ...]
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, eq=False)
class Served:
    """One certificate in service: where it came from, the pair, the context that serves it."""

    path: str
    pair: CertifiedKey
    context: ssl.SSLContext


class CertificateStore:
    """The SNI table of a listener's certificates, swapped atomically on reload."""

    def __init__(self, cfg: TlsListenerConfig, path: str, client_ca: bytes | None,
                 settle: float = DEFAULT_SETTLE) -> None:
        self.cfg = cfg
        self.path = path
        self.client_ca = client_ca
        self.watch = FileWatch(settle)
        self.configured: dict[int, Served] = {}
        self.installed: dict[str, Served] = {}
        self.challenge: Chooser | None = None
        self._table: SniTable[Served] | None = None
        self.front = server_base(cfg, path, client_ca)
        self.front.sni_callback = sni_callback(self.choose)

    @classmethod
    def open(cls, cfg: TlsListenerConfig, path: str, now: float,
             settle: float = DEFAULT_SETTLE) -> CertificateStore:
        """Load every configured certificate; TlsError lists every problem found."""
        ca_stamp = file_stamp(cfg.client_ca) if cfg.client_ca else None
        problems: list[Problem] = []
        try:
            client_ca = read_client_ca(cfg, path)
        except TlsError as exc:
            problems.extend(exc.problems)
            client_ca = None
        store = cls(cfg, path, client_ca, settle)
        if cfg.client_ca:
            store.watch.loaded(CLIENT_CA, (ca_stamp,))
        for i, cert in enumerate(cfg.certificates):
            stamps = _stamps(cert)
            try:
                store.configured[i] = store._build(i, cert, now)
            except TlsError as exc:
                problems.extend(exc.problems)
            store.watch.loaded(i, stamps)
        if problems:
            raise TlsError(problems)
        store._publish()
        return store

    def _build(self, i: int, cert: CertificateConfig, now: float) -> Served:
        where = f"{self.path}.certificates[{i}]"
        ctx, pair = pair_context(self.cfg, cert, where, now, self.client_ca)
        return Served(where, pair, ctx)

    # --- the handshake path ---------------------------------------------------------------

    def choose(self, server_name: str | None) -> ssl.SSLContext | None:
        """The context for a ClientHello naming `server_name` (None: keep `front`)."""
        if self.challenge is not None:
            ctx = self.challenge(server_name)
            if ctx is not None:
                return ctx
        table = self._table
        if table is None:
            return None
        return table.select(server_name).context

    def _publish(self) -> None:
        served = [*(self.configured[i] for i in sorted(self.configured)),
                  *self.installed.values()]
        self._table = SniTable.of([(s.pair.names, s) for s in served]) if served else None

    # --- reloads --------------------------------------------------------------------------

    def poll(self, now: float) -> list[Reloaded]:
        """Reload the files that changed (and settled); `now` is wall-clock seconds."""
        observed: dict[Hashable, Stamps] = {
            i: _stamps(cert) for i, cert in enumerate(self.cfg.certificates)
            if cert.cert is not None or cert.key is not None}
        if self.cfg.client_ca and self.client_ca is not None:
            observed[CLIENT_CA] = (file_stamp(self.cfg.client_ca),)
        due = self.watch.check(now, observed)
        if not due:
            return []
        results: list[Reloaded] = []
        if CLIENT_CA in due:
            results.append(self._reload_client_ca(now))
        for item in due:
            if isinstance(item, int):
                results.append(self._reload_entry(item, now))
        self._publish()
        return results

    def _reload_entry(self, i: int, now: float) -> Reloaded:
        try:
            served = self._build(i, self.cfg.certificates[i], now)
        except TlsError as exc:
            old = self.configured.get(i)
            return Reloaded(f"{self.path}.certificates[{i}]",
                            old.pair.names if old else (), tuple(exc.problems))
        self.configured[i] = served
        return Reloaded(served.path, served.pair.names)

    def _reload_client_ca(self, now: float) -> Reloaded:
        where = f"{self.path}.{CLIENT_CA}"
        try:
            client_ca = read_client_ca(self.cfg, self.path)
            rebuilt = {i: Served(s.path, s.pair, server_context(self.cfg, s.pair, s.path,
                                                                 client_ca))
                       for i, s in self.configured.items()}
            installed = {k: Served(s.path, s.pair, server_context(self.cfg, s.pair, s.path,
                                                                   client_ca))
                         for k, s in self.installed.items()}
        except TlsError as exc:
            return Reloaded(where, (), tuple(exc.problems))
        self.client_ca, self.configured, self.installed = client_ca, rebuilt, installed
        return Reloaded(where, ())

    def install(self, key: str, pair: CertifiedKey) -> None:
        """Serve `pair` (e.g. from ACME) under `key`, replacing what `key` served before.

        Installed certificates come after the configured ones: a configured certificate
        keeps a name both claim, and stays the default."""
        ctx = server_context(self.cfg, pair, key, self.client_ca)
        self.installed[key] = Served(key, pair, ctx)
        self._publish()

    def uninstall(self, key: str) -> None:
        if self.installed.pop(key, None) is not None:
            self._publish()

    # --- what the gateway reports ---------------------------------------------------------

    def served(self) -> list[Served]:
        return [*(self.configured[i] for i in sorted(self.configured)),
                *self.installed.values()]

    def expiry(self, now: float) -> dict[str, float]:
        """Seconds until notAfter of the certificate serving each name (wall-clock `now`)."""
        table = self._table
        if table is None:
            return {}
        return {name: served.pair.seconds_left(now) for name, served in table.items()}

def _stamps(cert: CertificateConfig) -> Stamps:
    return tuple(file_stamp(f) if f is not None else None for f in (cert.cert, cert.key))

