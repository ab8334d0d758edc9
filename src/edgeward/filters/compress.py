"""`compress`: response bodies compressed with zstd, brotli or gzip, as the client accepts.

A response is compressible when it has a body (not 1xx/204/304, not to HEAD), is not partial
(206, or Content-Range), is not already encoded (Content-Encoding other than identity), does
not forbid it (`Cache-Control: no-transform`, RFC 9111 §5.2.2.6), has a listed content type
and, when its length is known, at least `min_size` bytes. A compressible response always gets
`Vary: Accept-Encoding` (caches must key on it, whether or not this client got a coding).
The coding is the client's best by q-value among the configured ones, ties going to the
configured order (`edgeward.filters.encoding.choose`); HTTP/1.0 clients get none (the body's
new length is unknown, and chunked needs 1.1: nginx gzip_http_version 1.1). A compressed
response loses its length (`body_length = STREAMED`: chunked on HTTP/1.1), its Accept-Ranges,
and a strong ETag becomes weak (the bytes differ; RFC 9110 §8.8.1).

The body streams through one encoder per response (bounded memory, see encoding.py): the
filter never holds a body. It runs after the header filters and users' filters in the
response phase (ORDER_COMPRESS), so it sees their changes.
"""

from __future__ import annotations

from typing import ClassVar, Final

from edgeward.filters.api import ORDER_COMPRESS, Filter, Request, Response
from edgeward.filters.encoding import Codec, Encoder, choose
from edgeward.filters.events import COMPRESS, FilterEvents
from edgeward.http.fields import Headers
from edgeward.http.message import NO_BODY, STREAMED

# Accept-Encoding values remembered with their choice (clients send a handful of them).
CHOICE_CACHE: Final = 256
_SLOT: Final = "compress:encoder"
_NOT_COMPRESSIBLE: Final = frozenset({204, 206, 304})


class ContentTypes:
    """Media types a route compresses: exact ("application/json"), a whole type ("text/*"),
    or everything ("*/*")."""

    __slots__ = ("exact", "prefixes", "everything")

    def __init__(self, patterns: list[str]) -> None:
        lowered = [p.lower() for p in patterns]
        self.everything = "*/*" in lowered or "*" in lowered
        self.exact = frozenset(p for p in lowered if not p.endswith("/*"))
        self.prefixes = tuple(p[:-1] for p in lowered if p.endswith("/*") and p != "*/*")

    def __contains__(self, content_type: object) -> bool:
        assert isinstance(content_type, str)
        media = content_type.partition(";")[0].strip().lower()
        if not media:
            return False
        if self.everything or media in self.exact:
            return True
        return any(media.startswith(p) for p in self.prefixes)


class Compress(Filter):
    order: ClassVar[int] = ORDER_COMPRESS

    def __init__(self, *, codings: tuple[str, ...], levels: dict[str, int], min_size: int,
                 types: ContentTypes, events: FilterEvents) -> None:
        self.name = "compress"
        self.codings = codings
        self.codecs = {c: Codec(c, levels[c]) for c in codings}
        self.min_size = min_size
        self.types = types
        self.events = events
        self.choices: dict[str, str | None] = {}

    def on_response(self, req: Request, resp: Response) -> None:
        status = resp.status
        if status < 200 or status in _NOT_COMPRESSIBLE or req.method == "HEAD":
            return
        length = resp.body_length
        if length == NO_BODY or 0 < length < self.min_size:
            return
        headers = resp.headers
        if not self.compressible(headers):
            return
        _add_vary(headers)
        accept = req.headers.get("accept-encoding")
        if accept is None or req.http10:
            return
        coding = self.choose(accept)
        if coding is None:
            return
        headers.append(b"content-encoding", coding.encode("ascii"))
        headers.remove("accept-ranges")
        etag = headers.get("etag")
        if etag is not None and not etag.startswith("W/"):
            headers.set("etag", "W/" + etag)
        resp.body_length = STREAMED
        req.vars[_SLOT] = self.codecs[coding].encoder()
        self.events.count(COMPRESS, req.route_name, coding)

    def compressible(self, headers: Headers) -> bool:
        content_type = headers.get("content-type")
        if content_type is None or content_type not in self.types:
            return False
        encoding = headers.get("content-encoding")
        if encoding is not None and encoding.strip().lower() != "identity":
            return False
        if "content-range" in headers:
            return False
        cache_control = headers.get("cache-control")
        return cache_control is None or "no-transform" not in cache_control.lower()

    def choose(self, accept: str) -> str | None:
        choices = self.choices
        if accept in choices:
            return choices[accept]
        found = choose(accept, self.codings)
        if len(choices) >= CHOICE_CACHE:
            choices.clear()
        choices[accept] = found
        return found

    def on_response_body(self, req: Request, resp: Response, data: bytes, end: bool) -> bytes:
        state = req.vars
        encoder = state.get(_SLOT)
        if not isinstance(encoder, Encoder):
            return data
        out = encoder.compress(data) if data else b""
        if end:
            del state[_SLOT]
            out += encoder.finish()
        return out


def _add_vary(headers: Headers) -> None:
    vary = headers.get("vary")
    if vary is None:
        headers.append(b"vary", b"Accept-Encoding")
        return
    lowered = vary.lower()
    if "*" in lowered or "accept-encoding" in lowered:
        return
    headers.set("vary", vary + ", Accept-Encoding")
