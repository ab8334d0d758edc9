"""`TlsOrigin`: tests/support/origin.py's recording origin behind a real TLS handshake.

    with TlsOrigin(server_ctx) as o:      # https://127.0.0.1:o.port, answers as Origin does
        o.handshakes                      # [Handshake(server_name, reused, peer, error)]

Each connection's handshake is recorded: the SNI the client sent, whether it resumed a
session, the subject of the certificate the client showed (mTLS), or why it failed.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass

from support.origin import ConnectionRecord, Origin


@dataclass
class Handshake:
    server_name: str | None = None
    reused: bool = False
    peer_subject: str | None = None
    error: str | None = None


class TlsOrigin(Origin):
    def __init__(self, ctx: ssl.SSLContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.handshakes: list[Handshake] = []
        self._thread_sni = threading.local()  # each connection's handshake runs on its thread
        ctx.sni_callback = self._sni

    def __enter__(self) -> TlsOrigin:
        self.start()
        return self

    def _sni(self, obj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        self._thread_sni.name = name

    def ok(self) -> list[Handshake]:
        with self.lock:
            return [h for h in self.handshakes if h.error is None]

    def _serve(self, sock: socket.socket, record: ConnectionRecord) -> None:
        seen = Handshake()
        with self.lock:
            self.handshakes.append(seen)
        sock.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            seen.error = str(exc)
            with self.lock:
                record.closed = True
                self._socks.discard(sock)
            sock.close()
            return
        tls.settimeout(None)
        seen.server_name = getattr(self._thread_sni, "name", None)
        seen.reused = tls.session_reused
        peer = tls.getpeercert()
        if peer:
            seen.peer_subject = ",".join(f"{k}={v}" for rdn in peer["subject"] for k, v in rdn)
        with self.lock:
            self._socks.discard(sock)
            self._socks.add(tls)
        super()._serve(tls, record)
