"""Session ticket keys shared by the workers of a host (and by hosts), rotated.

A TLS session ticket is the session state encrypted with the server's ticket key; a client
resumes (one round trip, no certificate signature) only at a server that holds the same key.
With SO_REUSEPORT each new connection lands on any worker, so every worker must hold the key.

Python's `ssl` module has no API for ticket keys. Two ways exist, used in this order:

1. The key hook (`install_ticket_key`): OpenSSL's SSL_CTX_set_tlsext_ticket_keys control,
   called through ctypes on the SSL_CTX behind an `ssl.SSLContext`. Every worker derives the
   key of the current period from one secret (HKDF-SHA256 of the secret and the period
   number), so workers (and hosts given the same `session_ticket_key_file`) agree without
   talking, and the key changes every `session_ticket_rotation`. The hook reads the SSL_CTX
   pointer from CPython's SSLContext object; it checks that the pointer is right (options and
   verify mode read through it equal the object's, the key reads back) and is refused on any
   other interpreter or when `_ssl` and the loaded libssl differ, never guessing.
2. Fork inheritance (no hook): a context created before the workers fork carries OpenSSL's
   random ticket key into each worker, so resumption works across the workers of one master.
   That key is never rotated (only a new master process gets a new one) and other hosts or a
   store rebuilt by a config reload do not share it.

What does not hold either way: OpenSSL keeps one key per context, so at a rotation the tickets
issued under the previous key stop being accepted (those clients do one full handshake, as
after a restart); nginx's and Caddy's lists of old decryption keys are not possible here.
Tickets live as long as OpenSSL's session timeout (300 s for TLS 1.2, 7200 s hint for 1.3
tickets), which Python does not let us change.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import os
import platform
import ssl
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edgeward.structs import Problem
from edgeward.tls.certs import TlsError

# OpenSSL's ticket key block: 16 bytes key name, 32 bytes HMAC secret, 32 bytes AES key.
TICKET_KEY_BYTES = 80
# A shared secret shorter than this is refused: HKDF cannot make entropy that is not there.
MIN_SECRET_BYTES = 32
_SET_TICKET_KEYS = 59   # SSL_CTRL_SET_TLSEXT_TICKET_KEYS
_GET_TICKET_KEYS = 58   # SSL_CTRL_GET_TLSEXT_TICKET_KEYS
_INFO = b"edgeward tls session ticket key v1 "


def new_secret() -> bytes:
    """A random secret; made in the master before fork so every worker inherits it."""
    return os.urandom(48)


def read_secret(file: str, path: str) -> bytes:
    """The secret in `file` (raw bytes, e.g. `openssl rand 48 > FILE`), at least 32 bytes."""
    try:
        with open(file, "rb") as fh:
            data = fh.read(4096)
    except OSError as exc:
        raise TlsError([Problem(path, f"{file}: cannot read: {exc.strerror or exc}")]) from None
    if len(data) < MIN_SECRET_BYTES:
        raise TlsError([Problem(path, f"{file}: holds {len(data)} bytes; a ticket key secret "
                                      f"needs at least {MIN_SECRET_BYTES} "
                                      "(openssl rand 48 > FILE)")])
    return data


@dataclass(frozen=True)
class TicketSchedule:
    """Which ticket key is in force at a time: sans-I/O, the same answer in every worker.

    Periods are whole seconds (`rotation` is rounded), so every worker computes the same
    boundaries exactly, free of float rounding."""

    secret: bytes
    rotation: int

    @classmethod
    def every(cls, secret: bytes, rotation: float) -> TicketSchedule:
        return cls(secret, max(1, round(rotation)))

    def period(self, now: float) -> int:
        return math.floor(now) // self.rotation

    def key(self, now: float) -> bytes:
        """The 80-byte key block for wall-clock `now`."""
        return self.key_of(self.period(now))

    def key_of(self, period: int) -> bytes:
        kdf = HKDF(algorithm=hashes.SHA256(), length=TICKET_KEY_BYTES, salt=None,
                   info=_INFO + period.to_bytes(8, "big", signed=True))
        return kdf.derive(self.secret)

    def next_rotation(self, now: float) -> float:
        """When the key after the one in force at `now` takes over."""
        return float((self.period(now) + 1) * self.rotation)


class TicketKeysUnsupported(Exception):
    """The key hook cannot be used here; the reason says why (fall back to fork inheritance)."""


class _OpenSSL:
    """The libssl `_ssl` is linked with, and the few calls the hook needs."""

    def __init__(self) -> None:
        if platform.python_implementation() != "CPython":
            raise TicketKeysUnsupported("needs CPython's ssl module")
        lib = ctypes.CDLL(_loaded_libssl())
        lib.OpenSSL_version_num.restype = ctypes.c_ulong
        if lib.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
            raise TicketKeysUnsupported("the libssl found is not the one Python's ssl uses")
        lib.SSL_CTX_ctrl.restype = ctypes.c_long
        lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long,
                                     ctypes.c_void_p]
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
        lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
        self.lib = lib

    def ctx_pointer(self, ctx: ssl.SSLContext) -> int:
        """The SSL_CTX* stored right after the object header of CPython's PySSLContext."""
        pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
        if not pointer:
            raise TicketKeysUnsupported("no SSL_CTX found in the SSLContext object")
        if (self.lib.SSL_CTX_get_options(pointer) != int(ctx.options)
                or self.lib.SSL_CTX_get_verify_mode(pointer) != _openssl_verify_mode(ctx)):
            raise TicketKeysUnsupported("the SSLContext layout is not the one expected")
        return pointer

    def set_keys(self, ctx: ssl.SSLContext, key: bytes) -> None:
        pointer = self.ctx_pointer(ctx)
        block = ctypes.create_string_buffer(key, TICKET_KEY_BYTES)
        if self.lib.SSL_CTX_ctrl(pointer, _SET_TICKET_KEYS, TICKET_KEY_BYTES, block) != 1:
            raise TicketKeysUnsupported("OpenSSL refused the ticket key")
        check = ctypes.create_string_buffer(TICKET_KEY_BYTES)
        self.lib.SSL_CTX_ctrl(pointer, _GET_TICKET_KEYS, TICKET_KEY_BYTES, check)
        if check.raw != key:
            raise TicketKeysUnsupported("the ticket key did not read back")


# How CPython's _ssl.c sets SSL_CTX_set_verify for each `verify_mode`: SSL_VERIFY_PEER (1),
# with SSL_VERIFY_FAIL_IF_NO_PEER_CERT (2) for CERT_REQUIRED, and SSL_VERIFY_POST_HANDSHAKE (8)
# when `post_handshake_auth` is on.
_VERIFY_FLAGS = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}


def _openssl_verify_mode(ctx: ssl.SSLContext) -> int:
    mode = _VERIFY_FLAGS[ctx.verify_mode]
    if mode and ctx.post_handshake_auth:
        mode |= 8
    return mode


def _loaded_libssl() -> str:
    """Path of the libssl mapped into this process by `_ssl` (Linux), else the system's."""
    import _ssl  # noqa: F401  (maps libssl)

    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(" ", 1)[-1].strip()
                if "/libssl.so" in path:
                    return path
    except OSError:
        pass
    found = ctypes.util.find_library("ssl")
    if not found:
        raise TicketKeysUnsupported("libssl not found")
    return found


@functools.cache
def _library() -> _OpenSSL:
    try:
        return _OpenSSL()
    except (OSError, AttributeError) as exc:
        raise TicketKeysUnsupported(f"libssl cannot be called: {exc}") from None


def install_ticket_key(ctx: ssl.SSLContext, key: bytes) -> None:
    """Make `ctx` encrypt and decrypt session tickets with `key` (80 bytes).

    Raises TicketKeysUnsupported (with the reason) where the hook cannot be used."""
    if len(key) != TICKET_KEY_BYTES:
        raise ValueError(f"a ticket key block is {TICKET_KEY_BYTES} bytes, got {len(key)}")
    _library().set_keys(ctx, key)


class TicketKeys:
    """The shell's side: install the key in force into a front context, say when to rotate.

        keys = TicketKeys(TicketSchedule.every(secret, cfg.session_ticket_rotation))
        wake_at = keys.apply(store.front, time.time())   # call again at wake_at
    """

    def __init__(self, schedule: TicketSchedule) -> None:
        self.schedule = schedule
        self.unsupported: str | None = None

    def apply(self, ctx: ssl.SSLContext, now: float) -> float | None:
        """Install the current key; the time of the next rotation, or None when the hook is
        unsupported here (`unsupported` says why: fork inheritance is what remains)."""
        try:
            install_ticket_key(ctx, self.schedule.key(now))
        except TicketKeysUnsupported as exc:
            self.unsupported = str(exc)
            return None
        return self.schedule.next_rotation(now)
