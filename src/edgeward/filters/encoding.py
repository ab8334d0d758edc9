"""Content codings for `compress`: Accept-Encoding negotiation (RFC 9110 §12.5.3) and the
streaming encoders (gzip from the stdlib's zlib, brotli from `brotli`, zstd from `zstandard`).

Each encoder is one object per response, fed the body as it streams (`compress`) and closed
with `finish`; its memory is its window and state, whatever the body's size: about 260 KiB for
gzip (zlib's defaults: 32 KiB window, memLevel 8), 360 KiB for brotli at quality <= 4 with a
256 KiB window (lgwin 18; the library's default 4 MiB window would take 700 KiB and more), and
160 KiB for zstd with a 512 KiB window (window_log 19). Quality 5 and above make brotli keep
far larger tables (2 MiB a response), which is why the config caps its level at 4.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, Final

# The codings this gateway can produce, by their Accept-Encoding token.
GZIP: Final = "gzip"
BROTLI: Final = "br"
ZSTD: Final = "zstd"
CODINGS: Final = (ZSTD, BROTLI, GZIP)

LEVELS: Final = {GZIP: (1, 9), BROTLI: (0, 4), ZSTD: (1, 19)}  # allowed (lowest, highest)
BROTLI_LGWIN: Final = 18
ZSTD_WINDOW_LOG: Final = 19


def parse_accept(value: str) -> dict[str, float]:
    """Coding -> q from an Accept-Encoding value; `x-gzip` is gzip; a bad q drops the item."""
    out: dict[str, float] = {}
    for item in value.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        q = 1.0
        ok = True
        for param in params.split(";") if params else ():
            key, _, number = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(number.strip())
                except ValueError:
                    ok = False
                    break
                if not 0.0 <= q <= 1.0:
                    ok = False
        if not ok:
            continue
        if coding == "x-gzip":
            coding = GZIP
        if coding not in out:
            out[coding] = q
    return out


def choose(value: str, offered: tuple[str, ...]) -> str | None:
    """The coding to use: the highest q among `offered` (a coding not named takes the q of
    `*`, else is not acceptable); ties go to the earlier in `offered` (the gateway's
    preference). None: identity."""
    prefs = parse_accept(value)
    star = prefs.get("*", 0.0)
    best: str | None = None
    best_q = 0.0
    for name in offered:
        q = prefs.get(name, star)
        if q > best_q:
            best, best_q = name, q
    return best


# Idle zstd compressors kept per codec (see Codec): enough for the responses a worker
# compresses at once in the common case; more are made as needed and dropped after.
ZSTD_IDLE: Final = 16


class Encoder:
    """One response's compressor: `compress` each piece, then `finish` once."""

    __slots__ = ("_compress", "_finish", "_done", "size_in", "size_out")

    def __init__(self, compress: Callable[[bytes], bytes], finish: Callable[[], bytes],
                 done: Callable[[], None] | None = None) -> None:
        self._compress = compress
        self._finish = finish
        self._done = done
        self.size_in = 0
        self.size_out = 0

    def compress(self, data: bytes) -> bytes:
        self.size_in += len(data)
        out = self._compress(data)
        self.size_out += len(out)
        return out

    def finish(self) -> bytes:
        out = self._finish()
        self.size_out += len(out)
        if self._done is not None:
            self._done()
        return out


class Codec:
    """One coding at one level, made when the config is compiled: `encoder()` per response.

    A zstd compressor costs 50 us to make and its context can serve one stream at a time, so
    finished ones are kept (up to ZSTD_IDLE) and handed to the next response; one whose
    response never finished (the client went away) is simply dropped.
    """

    __slots__ = ("coding", "level", "idle", "_zstd_params")

    def __init__(self, coding: str, level: int) -> None:
        if coding not in LEVELS:
            raise ValueError(f"unknown coding {coding!r}")
        self.coding = coding
        self.level = level
        self.idle: list[Any] = []
        self._zstd_params: Any = None
        if coding == ZSTD:
            import zstandard

            self._zstd_params = zstandard.ZstdCompressionParameters.from_level(
                level, window_log=ZSTD_WINDOW_LOG)

    def encoder(self) -> Encoder:
        coding = self.coding
        obj: Any
        if coding == GZIP:
            obj = zlib.compressobj(self.level, zlib.DEFLATED, 31)  # gzip header, 32 KiB window
            return Encoder(obj.compress, obj.flush)
        if coding == BROTLI:
            import brotli

            obj = brotli.Compressor(quality=self.level, lgwin=BROTLI_LGWIN)
            return Encoder(obj.process, obj.finish)
        idle = self.idle
        if idle:
            compressor = idle.pop()
        else:
            import zstandard

            compressor = zstandard.ZstdCompressor(compression_params=self._zstd_params)
        obj = compressor.compressobj()

        def done() -> None:
            if len(idle) < ZSTD_IDLE:
                idle.append(compressor)

        return Encoder(obj.compress, obj.flush, done)
