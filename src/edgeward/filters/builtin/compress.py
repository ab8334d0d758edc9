"""Config of `compress` (docs/filters.md, "Compression").

    compress: {algorithms: [zstd, br, gzip], min_size: 1KiB, levels: {gzip: 5}}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

from edgeward.filters.compress import Compress, ContentTypes
from edgeward.filters.config import BuildContext, register
from edgeward.filters.encoding import BROTLI, GZIP, LEVELS, ZSTD
from edgeward.values import Size, doc

Algorithm = Literal["zstd", "br", "gzip"]

# Server preference when the client accepts several equally: zstd and brotli compress JSON
# and HTML better than gzip at a like cost, and every client accepts gzip (Caddy's `encode`
# order zstd, gzip; Cloudflare prefers br, then zstd, over gzip).
DEFAULT_ALGORITHMS: Final = ("zstd", "br", "gzip")
# Traefik's compress middleware minResponseBodyBytes is 1024: below it the framing and the
# coding's header eat most of the gain (nginx gzip_min_length 20, Envoy 30 are far lower).
DEFAULT_MIN_SIZE: Final = 1024
# Levels chosen for a gateway's CPU budget (benchmarks/compress_levels.py measures MB/s per
# algorithm and level): gzip 1 is nginx's gzip_comp_level default; brotli 1 and zstd 3 (the
# zstd library's default) compress JSON better than gzip 1 at a like or lower cost.
DEFAULT_GZIP_LEVEL: Final = 1
DEFAULT_BROTLI_LEVEL: Final = 1
DEFAULT_ZSTD_LEVEL: Final = 3
# Envoy compressor's default content types (text and structured text; images, audio and
# archives are compressed already).
DEFAULT_CONTENT_TYPES: Final = (
    "application/javascript", "application/json", "application/xhtml+xml", "image/svg+xml",
    "text/css", "text/html", "text/plain", "text/xml",
)
_MEDIA: Final = re.compile(r"([a-z0-9][a-z0-9!#$&^_.+-]*|\*)/([a-z0-9][a-z0-9!#$&^_.+-]*|\*)")


@dataclass(frozen=True, kw_only=True)
class LevelsConfig:
    gzip: int = field(default=DEFAULT_GZIP_LEVEL, metadata=doc("1-9 (nginx default 1)"))
    br: int = field(default=DEFAULT_BROTLI_LEVEL, metadata=doc("0-4 (memory bound, see docs)"))
    zstd: int = field(default=DEFAULT_ZSTD_LEVEL, metadata=doc("1-19 (library default 3)"))

    def check(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for key in (GZIP, BROTLI, ZSTD):
            low, high = LEVELS[key]
            value = getattr(self, key)
            if not low <= value <= high:
                out.append((key, f"must be {low}-{high}, got {value}"))
        return out


@dataclass(frozen=True, kw_only=True)
class CompressConfig:
    algorithms: list[Algorithm] = field(
        default_factory=lambda: list(DEFAULT_ALGORITHMS),
        metadata=doc("codings offered, in the gateway's order of preference"))
    min_size: Size = field(
        default=DEFAULT_MIN_SIZE,
        metadata=doc("smaller bodies (of known length) are sent as they are"))
    content_types: list[str] = field(
        default_factory=lambda: list(DEFAULT_CONTENT_TYPES),
        metadata=doc('media types compressed ("text/*" a whole type, "*/*" all); others '
                     "are not"))
    levels: LevelsConfig = field(default_factory=LevelsConfig, metadata=doc("per coding"))

    def check(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if not self.algorithms:
            out.append(("algorithms", "give at least one of zstd, br, gzip"))
        seen: set[str] = set()
        for i, name in enumerate(self.algorithms):
            if name in seen:
                out.append((f"algorithms[{i}]", f"{name} is listed twice"))
            seen.add(name)
        for i, media in enumerate(self.content_types):
            if _MEDIA.fullmatch(media.lower()) is None or media.startswith("*/") and media != "*/*":
                out.append((f"content_types[{i}]",
                            f'expected type/subtype, type/* or */*, got {media!r}'))
        return out


def _make(config: CompressConfig, ctx: BuildContext) -> Compress:
    levels = {GZIP: config.levels.gzip, BROTLI: config.levels.br, ZSTD: config.levels.zstd}
    return Compress(codings=tuple(config.algorithms), levels=levels, min_size=config.min_size,
                    types=ContentTypes(config.content_types), events=ctx.events)


register("compress", CompressConfig, _make)
