"""A real TLS server on 127.0.0.1 (a thread, blocking sockets) and a client that reports
what was negotiated: enough to see what a client of the gateway would see."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cryptography import x509


@dataclass
class Seen:
    """What the server saw of one connection."""

    version: str | None = None
    alpn: str | None = None
    peer: dict[str, object] | None = None
    error: str | None = None


@dataclass
class Server:
    port: int
    seen: list[Seen] = field(default_factory=list)


@contextmanager
def tls_server(ctx: ssl.SSLContext, reply: bytes = b"ok") -> Iterator[Server]:
    """Accept connections until closed; each gets a handshake, `reply`, and a close."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = Server(listener.getsockname()[1])
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            raw.settimeout(5)
            seen = Seen()
            server.seen.append(seen)
            try:
                with ctx.wrap_socket(raw, server_side=True) as conn:
                    seen.version, seen.alpn = conn.version(), conn.selected_alpn_protocol()
                    seen.peer = conn.getpeercert() or None
                    conn.sendall(reply)
                    conn.recv(1)
            except (OSError, ssl.SSLError) as exc:
                seen.error = str(exc)
                raw.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        try:
            listener.shutdown(socket.SHUT_RDWR)    # wakes the blocked accept()
        except OSError:
            pass
        listener.close()
        thread.join(5)
        assert not thread.is_alive()


@dataclass
class Handshake:
    version: str | None
    cipher: str | None
    alpn: str | None
    cert: x509.Certificate
    reused: bool
    session: ssl.SSLSession | None


def connect(port: int, ctx: ssl.SSLContext, server_name: str | None,
            session: ssl.SSLSession | None = None) -> Handshake:
    """Handshake with the server on `port`, read its reply, report what was negotiated."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name, session=session) as conn:
            conn.recv(16)   # TLS 1.3 tickets arrive after the handshake, with the data
            der = conn.getpeercert(binary_form=True)
            assert der is not None
            cipher = conn.cipher()
            result = Handshake(conn.version(), cipher[0] if cipher else None,
                               conn.selected_alpn_protocol(), x509.load_der_x509_certificate(der),
                               conn.session_reused, conn.session)
            conn.sendall(b"x")
            return result


def trusting(ca_pem: bytes, *, check_hostname: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    ctx.check_hostname = check_hostname
    return ctx
