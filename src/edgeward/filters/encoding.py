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


class Encoder:
    """One response's compressor."""

    __slots__ = ("_compress", "_finish", "size_in", "size_out")

    def __init__(self, coding: str, level: int) -> None:
        obj: Any
        if coding == GZIP:
            obj = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip header, 32 KiB window
            self._compress, self._finish = obj.compress, obj.flush
        elif coding == BROTLI:
            import brotli

            obj = brotli.Compressor(quality=level, lgwin=BROTLI_LGWIN)
            self._compress, self._finish = obj.process, obj.finish
        elif coding == ZSTD:
            import zstandard

            params = zstandard.ZstdCompressionParameters.from_level(
                level, window_log=ZSTD_WINDOW_LOG)
            obj = zstandard.ZstdCompressor(compression_params=params).compressobj()
            self._compress, self._finish = obj.compress, obj.flush
        else:
            raise ValueError(f"unknown coding {coding!r}")
        self.size_in = 0
        self.size_out = 0

    def compress(self, data: bytes) -> bytes:
        self.size_in += len(data)
        out: bytes = self._compress(data)
        self.size_out += len(out)
        return out

    def finish(self) -> bytes:
        out: bytes = self._finish()
        self.size_out += len(out)
        return out
