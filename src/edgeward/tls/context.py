"""Building `ssl.SSLContext`s from the TLS config, with the settings the peers ship.

Server contexts (termination), Mozilla "intermediate":
  - TLS 1.2 and 1.3 (or 1.3 only), the intermediate cipher list for 1.2, OpenSSL's TLS 1.3
    suites;
  - no compression (CRIME), no renegotiation (client-initiated renegotiation is a DoS lever),
    client cipher preference (Mozilla intermediate: `ssl_prefer_server_ciphers off`, since
    every listed cipher is strong and clients know whether they have AES hardware);
  - fresh ECDH/DH keys per handshake, the ffdhe2048 group (RFC 7919) for the DHE suites, as
    Mozilla's generator ships; the key exchange groups Mozilla lists, X25519:P-256:P-384
    (tls/groups.py; OpenSSL 3's broader default list where its hook is refused);
  - ALPN, client certificate verification (mTLS), session tickets on or off.

Client contexts (origination): certificate and hostname verification on by default, the
system trust store unless `ca` is given, SNI from `server_name` (the caller passes it to
`wrap`/`create_connection`), a client certificate when configured.

Key material never touches disk: PEM is handed to OpenSSL through an anonymous memory file.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from edgeward.structs import Problem
from edgeward.tls.certs import CertifiedKey, TlsError, parse_chain, read_pair, read_pem_file
from edgeward.tls.config import CertificateConfig, TlsListenerConfig, TlsVersion, UpstreamTlsConfig
from edgeward.tls.groups import restrict_groups

VERSIONS: dict[TlsVersion, ssl.TLSVersion] = {
    "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3,
}

# RFC 7919 ffdhe2048, the group Mozilla's configuration generator ships as `dhparam`.
FFDHE2048 = b"""-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""

_SERVER_OPTIONS = (ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_SINGLE_ECDH_USE
                   | ssl.OP_SINGLE_DH_USE)


@contextmanager
def memory_file(data: bytes) -> Iterator[str]:
    """A path OpenSSL can open that holds `data`: a memfd on Linux, else a 0600 temp file."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("edgeward-tls", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, name = tempfile.mkstemp(prefix="edgeward-tls-")
    try:
        os.write(fd, data)
        os.close(fd)
        yield name
    finally:
        os.unlink(name)


def load_pair(ctx: ssl.SSLContext, pair: CertifiedKey, path: str) -> None:
    """Install a validated chain and key into `ctx`."""
    with memory_file(pair.chain_pem) as chain, memory_file(pair.key_pem) as key:
        try:
            ctx.load_cert_chain(chain, key)
        except ssl.SSLError as exc:
            raise TlsError([Problem(path, f"{pair.source}: OpenSSL refused the pair: "
                                          f"{exc.reason or exc}")]) from None


def server_base(cfg: TlsListenerConfig, path: str, client_ca: bytes | None) -> ssl.SSLContext:
    """A server context with every listener setting but no certificate.

    `client_ca` is the PEM of `cfg.client_ca` (read once by the caller so the front and every
    per-certificate context trust the same CAs).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = VERSIONS[cfg.min_version]
    try:
        ctx.set_ciphers(cfg.ciphers)
    except ssl.SSLError:
        raise TlsError([Problem(f"{path}.ciphers", "OpenSSL accepts none of these ciphers: "
                                                    f"{cfg.ciphers!r}")]) from None
    ctx.options |= _SERVER_OPTIONS
    ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    with memory_file(FFDHE2048) as dh:
        ctx.load_dh_params(dh)
    restrict_groups(ctx)  # Mozilla's X25519:P-256:P-384 where the OpenSSL hook is allowed
    ctx.set_alpn_protocols(list(cfg.alpn))
    if not cfg.session_tickets:
        ctx.options |= ssl.OP_NO_TICKET
        ctx.num_tickets = 0
    if cfg.client_auth != "none" and client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED if cfg.client_auth == "required" else ssl.CERT_OPTIONAL
        ctx.load_verify_locations(cadata=client_ca.decode("ascii", "replace"))
    return ctx


def read_client_ca(cfg: TlsListenerConfig, path: str) -> bytes | None:
    """The validated PEM of `client_ca`, or None when mTLS is off."""
    if cfg.client_ca is None or cfg.client_auth == "none":
        return None
    where = f"{path}.client_ca"
    data = read_pem_file(cfg.client_ca, where)
    parse_chain(data, cfg.client_ca, where)
    return data


def server_context(cfg: TlsListenerConfig, pair: CertifiedKey | None, path: str,
                   client_ca: bytes | None = None) -> ssl.SSLContext:
    """A server context for `pair` (None: a front context that only dispatches by SNI)."""
    ctx = server_base(cfg, path, client_ca)
    if pair is not None:
        load_pair(ctx, pair, path)
    return ctx


def pair_context(cfg: TlsListenerConfig, cert: CertificateConfig, path: str, now: float,
                 client_ca: bytes | None = None) -> tuple[ssl.SSLContext, CertifiedKey]:
    """Read, validate and install one `certificates[i]` entry at `path`."""
    pair = read_pair(cert, path, now)
    return server_context(cfg, pair, path, client_ca), pair


class ResumingContext(ssl.SSLContext):
    """A client context that offers the last session it saw for a server name again.

    asyncio opens TLS connections through `wrap_bio` and has no way to pass a session, so the
    context looks it up itself in `sessions` (filled by the upstream pool after each new
    connection's first exchange, when TLS 1.3 tickets have arrived). A session the server no
    longer accepts costs nothing but the full handshake it would have had anyway."""

    sessions: dict[str, ssl.SSLSession]

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                 server_side: bool = False, server_hostname: str | bytes | None = None,
                 session: ssl.SSLSession | None = None) -> ssl.SSLObject:
        if session is None and isinstance(server_hostname, str):
            session = self.sessions.get(server_hostname)
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)


def client_context(cfg: UpstreamTlsConfig, path: str, now: float) -> ResumingContext:
    """A client context for an upstream; pass `server_hostname=server_name(cfg, host)`.

    `now` (wall-clock seconds) is when the client certificate must be valid."""
    ctx = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.sessions = {}
    ctx.minimum_version = VERSIONS[cfg.min_version]
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    if cfg.verify:
        if cfg.ca is not None:
            where = f"{path}.ca"
            data = read_pem_file(cfg.ca, where)
            parse_chain(data, cfg.ca, where)
            ctx.load_verify_locations(cadata=data.decode("ascii", "replace"))
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(list(cfg.alpn))
    if cfg.client_cert is not None and cfg.client_key is not None:
        _load_client_pair(ctx, cfg.client_cert, cfg.client_key, path, now)
    return ctx


def _load_client_pair(ctx: ssl.SSLContext, cert: str, key: str, path: str, now: float) -> None:
    renamed = {f"{path}.cert": f"{path}.client_cert", f"{path}.key": f"{path}.client_key"}
    try:
        pair = read_pair(CertificateConfig(cert=cert, key=key), path, now)
        load_pair(ctx, pair, f"{path}.client_cert")
    except TlsError as exc:
        raise TlsError([Problem(renamed.get(p.path, p.path), p.reason)
                        for p in exc.problems]) from None


def server_name(cfg: UpstreamTlsConfig, host: str) -> str:
    """The SNI to send (and the name verified): `server_name`, else the target's host."""
    return cfg.server_name or host
