"""Protocol-neutral request and response heads passed between listener, exchange and upstream codec.

A listener (HTTP/1.1 now; HTTP/2 and WebSocket later) turns wire bytes into a `RequestHead` whose
`headers` are end-to-end only (hop-by-hop already removed) and whose framing is described by
`body_length` (NO_BODY, a length, or STREAMED for chunked/unknown length). The listener also
prepares `wire`, the HTTP/1.1 head for the upstream less its framing line (the head as
received when it can be forwarded so); the exchange adds the framing and never sees framing
bytes. Response heads travel back as HTTP/1.1 bytes too (relayed as received, minus the
hop-by-hop lines), with SIZED when they carry their own Content-Length.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

from edgeward.http.cookies import parse_cookies

NO_BODY: Final = 0
STREAMED: Final = -1  # body of unknown length: chunked on HTTP/1.1
SIZED: Final = -2     # a relayed response whose head carries its own Content-Length


class RequestHead:
    """One request as the exchange sees it. Implements `edgeward.request.RequestView`."""

    __slots__ = (
        "method",
        "target",
        "path",
        "host",
        "authority",
        "headers",
        "body_length",
        "client_ip",
        "request_id",
        "scheme",
        "wire",
        "id_line",
        "expect_continue",
        "keep_alive",
        "http10",
        "trace",
        "_index",
        "_cookies",
        "_query",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        path: str,
        host: str,
        authority: bytes,
        headers: list[tuple[bytes, bytes]],
        body_length: int,
        client_ip: str,
        request_id: str,
        scheme: str = "http",
    ) -> None:
        self.method = method
        self.target = target          # origin-form: path and query as sent
        self.path = path              # path without query, as sent
        self.host = host              # lower-case, no port
        self.authority = authority    # the Host header value forwarded upstream
        self.headers = headers        # end-to-end headers in arrival order
        self.body_length = body_length  # NO_BODY, n > 0, or STREAMED
        self.client_ip = client_ip
        self.request_id = request_id
        self.scheme = scheme
        # The upstream request head without its framing line and final CRLF: request line,
        # end-to-end headers and the lines the gateway adds (X-Forwarded-*, X-Request-Id).
        self.wire = b""
        self.id_line = b""            # `x-request-id: ...\r\n`, returned to the client
        self.expect_continue = False  # the client waits for 100 Continue before its body
        self.keep_alive = True        # the client lets the connection carry another request
        self.http10 = False           # an HTTP/1.0 client: no chunked responses, no 100
        self.trace: object | None = None  # the request's trace identity, when tracing is on
        self._index: dict[str, str] | None = None
        self._cookies: dict[str, str] | None = None
        self._query: dict[str, str] | None = None

    # RequestView -------------------------------------------------------------------------
    def header(self, name: str) -> str | None:
        index = self._index
        if index is None:
            index = {}
            for n, v in self.headers:
                index.setdefault(n.decode("latin-1").lower(), v.decode("latin-1"))
            self._index = index
        return index.get(name.lower())

    def cookie(self, name: str) -> str | None:
        if self._cookies is None:
            raw = self.header("cookie")
            self._cookies = parse_cookies(raw) if raw else {}
        return self._cookies.get(name)

    def query(self, name: str) -> str | None:
        if self._query is None:
            _, _, qs = self.target.partition(b"?")
            self._query = {}
            for k, v in parse_qsl(qs.decode("latin-1"), keep_blank_values=True):
                self._query.setdefault(k, v)
        return self._query.get(name)

    def __repr__(self) -> str:
        return f"<RequestHead {self.method} {self.host}{self.path} id={self.request_id}>"
