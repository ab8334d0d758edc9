"""Building the neutral request head from what llhttp parsed of an HTTP/1.1 request.

Framing rules (RFC 9112), on top of what llhttp already refuses in strict mode (obs-fold,
control characters, space before colon, CL+TE, duplicate or malformed Content-Length,
malformed chunks, bare LF): only HTTP/1.0 and 1.1; exactly one valid Host on 1.1; a
Transfer-Encoding of exactly `chunked`, and none on 1.0 (as nginx); no CONNECT; no upgrade
but to `websocket` (the head then carries `upgrade`, and the exchange checks the handshake);
origin-form (a valid path and query), `*` (for OPTIONS) or absolute-form targets only; at
most `max_headers` fields. Field names with `_` are dropped, refused or kept
(`server.headers_with_underscores`).

The head keeps the fields a client may send end to end (hop-by-hop and framing fields are
consumed here); when the read that carried it holds exactly the head, written canonically and
with nothing consumed, the received bytes become its headers' `wire`.

`HeadBuilder` does no I/O: the connection feeds it what the parser reports and gets a head
back, or a `Refused` exception naming the error to answer with.
"""

from __future__ import annotations

from typing import Any, Final

import httptools

from edgeward.http import paths
from edgeward.http.fields import Headers
from edgeward.http.headers import (
    KIND_CONNECTION,
    KIND_CONTENT_LENGTH,
    KIND_EXPECT,
    KIND_HOST,
    KIND_PLAIN,
    KIND_REQUEST_ID,
    KIND_TRANSFER_ENCODING,
    KIND_UPGRADE,
    KIND_XFF,
    OWNED_BIT,
    PLAIN_CONNECTION,
    RequestIds,
    connection_tokens,
    header_kind,
    split_host,
    valid_host,
)
from edgeward.http.listener import UNDERSCORES_ALLOW, UNDERSCORES_REJECT, ListenerState
from edgeward.http.message import NO_BODY, STREAMED, ClientCert, RequestHead


class Refused(Exception):
    """The request is refused: answer with `code` (and `message`), then close."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message


_HOST: Final = b"host"
_UPGRADE: Final = b"upgrade"
_WEBSOCKET: Final = b"websocket"
_H2C: Final = b"h2c"
_METHODS: Final = {m.encode(): m for m in (
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE")}
# Host header value -> lower-case host name (None when invalid). Bounded: a flood of
# distinct hosts only stops the cache from growing.
_HOSTS: Final[dict[bytes, str | None]] = {}
_MAX_HOSTS: Final = 4096


def _host_name(value: bytes) -> str | None:
    try:
        return _HOSTS[value]
    except KeyError:
        pass
    host = split_host(value) if valid_host(value) else None
    if len(_HOSTS) < _MAX_HOSTS:
        _HOSTS[value] = host
    return host


class HeadBuilder:
    """The request heads of one client connection, built from the parser's reports."""

    __slots__ = (
        "state", "client_ip", "url", "url_bytes", "fields", "head_bytes", "count", "hosts",
        "host_value", "chunked", "content_length", "conn_tokens", "upgrade", "expect_continue",
        "request_id", "owned", "consumed", "host_seen", "host_name", "client_cert",
    )

    def __init__(self, state: ListenerState) -> None:
        self.state = state
        self.client_ip = ""
        self.url = b""        # the request target (llhttp hands it over in one piece or more)
        self.url_bytes = 0
        self.fields: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0   # request line target + fields, as parsed
        self.count = 0        # fields in the head, consumed ones included
        self.hosts = 0
        self.host_value = b""
        self.chunked = False
        self.content_length = 0
        self.conn_tokens: frozenset[bytes] | None = None
        self.upgrade: bytes | None = None
        self.expect_continue = False
        self.request_id: bytes | None = None
        self.owned = 0        # OWN_* bits of the gateway-owned fields the client sent
        self.consumed = False  # a field was taken out of the head (it cannot be relayed)
        self.host_seen = b""  # the last Host value and its host name (clients repeat it)
        self.host_name: str | None = None
        self.client_cert: ClientCert | None = None  # the connection's verified certificate

    def begin(self) -> None:
        """A new request begins."""
        self.url = b""
        self.url_bytes = 0
        self.fields = []
        self.head_bytes = 0
        self.count = 0
        self.hosts = 0
        self.chunked = False
        self.content_length = 0
        self.conn_tokens = None
        self.upgrade = None
        self.expect_continue = False
        self.request_id = None
        self.owned = 0
        self.consumed = False

    def url_part(self, part: bytes) -> None:
        self.url = self.url + part if self.url else part
        self.url_bytes += len(part)
        if self.url_bytes > self.state.settings.max_request_line:
            raise Refused("uri_too_long")

    def field(self, name: bytes, value: bytes) -> None:
        # A whole head can arrive in one read (the wire count never sees it incomplete),
        # so the parsed fields are counted too.
        self.head_bytes += len(name) + len(value) + 4
        self.count += 1
        settings = self.state.settings
        if (self.head_bytes + self.url_bytes > settings.max_header_bytes
                or self.count > settings.max_headers):
            raise Refused("header_too_large")
        if 95 in name and settings.underscores != UNDERSCORES_ALLOW:  # 95: "_"
            self.state.underscore_headers += 1
            if settings.underscores == UNDERSCORES_REJECT:
                raise Refused("bad_request", "header names with underscores are refused")
            self.consumed = True
            return
        kind = header_kind(name)
        if kind == KIND_PLAIN:
            own = settings.client_cert_header
            if own is not None and len(name) == len(own) and name.lower() == own:
                self.consumed = True  # only the gateway sets it, from a verified certificate
                return
            self.fields.append((name, value))
        elif kind == KIND_HOST:
            self.hosts += 1
            self.fields.append((name, value))
            if value and (value[-1] == 32 or value[-1] == 9):
                value = value.rstrip(b" \t")  # llhttp leaves trailing OWS in values
            self.host_value = value
        elif kind >= KIND_XFF:
            self.owned |= OWNED_BIT[kind]
            self.fields.append((name, value))
        else:
            self.consumed = True
            self._framing(kind, value)

    def _framing(self, kind: int, value: bytes) -> None:
        """A field the codec consumes: framing, connection options, the request id."""
        if kind == KIND_CONTENT_LENGTH:
            self.content_length = int(value)  # llhttp checked it: digits only, no repeats
        elif kind == KIND_TRANSFER_ENCODING:
            if value.strip().lower() != b"chunked":
                raise Refused("not_implemented", "only Transfer-Encoding: chunked is accepted")
            self.chunked = True
        elif kind == KIND_CONNECTION:
            tokens = connection_tokens(value)
            self.conn_tokens = tokens if self.conn_tokens is None else self.conn_tokens | tokens
        elif kind == KIND_UPGRADE:
            self.upgrade = value.strip().lower()
        elif kind == KIND_EXPECT:
            self.expect_continue = value.strip().lower() == b"100-continue"
        elif kind == KIND_REQUEST_ID:
            self.request_id = value
        # other hop-by-hop names: dropped

    # the head --------------------------------------------------------------------------------
    def build(self, parser: httptools.HttpRequestParser, read: bytes | None) -> RequestHead:
        """The head of the request whose fields were all reported; `read` is the read that
        carried it when it began at the read's start (the head may then be relayed)."""
        raw_method = parser.get_method()
        if raw_method == b"GET":
            method = "GET"
        else:
            known = _METHODS.get(raw_method)
            method = known if known is not None else raw_method.decode("ascii")
        if method == "CONNECT":
            raise Refused("not_implemented", "CONNECT is not forwarded")
        upgrade: bytes | None = None
        if self.upgrade is not None and self.conn_tokens and _UPGRADE in self.conn_tokens:
            upgrade = self._upgrade(self.upgrade)
        http10 = self._http10(parser)
        if http10 and self.chunked:
            # RFC 9112 §6.1: faulty framing (an HTTP/1.0 hop may have kept part of the body).
            raise Refused("bad_request", "Transfer-Encoding is not accepted on HTTP/1.0")
        authority, target, path = self.target_of(method, self.url)
        host = self._host(http10, authority)
        if self.conn_tokens and not self.conn_tokens <= PLAIN_CONNECTION:
            self._drop_nominated(self.conn_tokens)
        relay = None
        if read is not None and authority is None and not http10 and not self.consumed:
            relay = self._as_sent(read, raw_method)
        head = self._head(parser, method, target, path, host, http10, relay)
        if upgrade is not None:
            head.upgrade = upgrade
            head.keep_alive = False  # unless switched, the connection ends with the answer
        return head

    @staticmethod
    def _upgrade(value: bytes) -> bytes:
        """The protocol an Upgrade field (with `Connection: upgrade`) asks for: websocket, or
        a refusal (h2c is never accepted; other protocols are not forwarded)."""
        tokens = [t.strip() for t in value.split(b",")]
        if _WEBSOCKET in tokens:
            return _WEBSOCKET
        if _H2C in tokens:
            raise Refused("bad_request", "Upgrade: h2c is not accepted")
        raise Refused("not_implemented", f"Upgrade: {value.decode('latin-1')}")

    def _head(self, parser: httptools.HttpRequestParser, method: str, target: bytes, path: str,
              host: str, http10: bool, relay: bytes | None) -> RequestHead:
        state = self.state
        rid = self.request_id
        if rid is not None and RequestIds.acceptable(rid):
            request_id = rid.decode()
        else:
            request_id = state.ids.new()
            rid = request_id.encode()
        if self.chunked:
            body_length = STREAMED
        elif self.content_length > 0:
            body_length = self.content_length
        else:
            body_length = NO_BODY
        fields = self.fields
        cert = self.client_cert
        if cert is not None:
            own = state.settings.client_cert_header
            if own is not None:
                fields.append((own, cert.forwarded))
                relay = None
        headers = Headers(fields, relay, len(fields) if relay is not None else 0)
        head = RequestHead(method, target, path, host, self.host_value, headers, body_length,
                           self.client_ip, request_id, state.scheme)
        head.client_cert = self.client_cert
        head.owned = self.owned
        head.id_line = b"x-request-id: " + rid + b"\r\n"
        head.expect_continue = self.expect_continue and not http10  # RFC 9110 §10.1.1
        # Per request: a pipelined request's own keep-alive and version govern its response.
        head.keep_alive = parser.should_keep_alive()
        head.http10 = http10
        return head

    def _as_sent(self, data: bytes, raw_method: bytes) -> bytes | None:
        """The head as received (less its final CRLF) when `data` holds exactly it, written
        canonically (`name: value`, one space): each line is checked to end where that
        spelling ends it (a line written otherwise differs by one space at most, and no CR
        can occur inside a line, so a CRLF there proves the line is canonical)."""
        pos = len(raw_method) + self.url_bytes + 12  # after `METHOD target HTTP/1.1\r\n`
        if not (data[:1] == raw_method[:1] and len(data) == pos + self.head_bytes + 2
                and data[pos - 2] == 13 and data[pos - 1] == 10):
            return None
        for name, value in self.fields:
            pos += len(name) + len(value) + 4
            if data[pos - 2] != 13 or data[pos - 1] != 10:
                return None
        return data[:-2]

    def _http10(self, parser: httptools.HttpRequestParser) -> bool:
        """Whether the request is HTTP/1.0 (other versions than 1.0 and 1.1 are refused)."""
        # llhttp keeps the version to itself but for a formatted string; a request that
        # llhttp calls persistent without any Connection header can only be HTTP/1.1.
        if parser.should_keep_alive() and self.conn_tokens is None:
            return False
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise Refused("http_version_not_supported", f"HTTP/{version} is not accepted")
        return version == "1.0"

    def target_of(self, method: str, target: bytes) -> tuple[bytes | None, bytes, str]:
        """(authority of an absolute-form target, origin-form target, normalised path)."""
        authority: bytes | None = None
        if target[:1] == b"/":
            path = paths.clean_target(target)
            if path is not None:
                return None, target, path  # the usual case: nothing to check or change
        else:
            if target == b"*":
                if method != "OPTIONS":
                    raise Refused("bad_request", "the * target is only valid for OPTIONS")
                return None, target, "*"
            parsed = absolute_form(target)
            if parsed is None:
                raise Refused("bad_request",
                              "request target must be origin-form or absolute-form")
            authority, target = parsed
        q = target.find(b"?")
        raw_path = target if q < 0 else target[:q]
        if q >= 0 and not paths.valid_query(target[q + 1:]):
            raise Refused("bad_request", "invalid characters in the query")
        # An origin-form target got here because its path is not clean (clean_target said
        # so, its query being valid): only an absolute-form one needs the quick check.
        if authority is not None and paths.is_clean(raw_path):
            return authority, target, raw_path.decode("ascii")
        policy = self.state.settings.path_normalization
        normal = paths.normalize(raw_path)
        if normal is None:
            raise Refused("bad_request", "invalid request path")
        if policy == paths.OFF or normal == raw_path:
            return authority, target, raw_path.decode("ascii")
        if policy == paths.REJECT:
            raise Refused("bad_request", "the request path is not in normal form")
        self.consumed = True  # forwarded with another request line
        target = normal if q < 0 else normal + target[q:]
        return authority, target, normal.decode("ascii")

    def _host(self, http10: bool, authority: bytes | None) -> str:
        hosts = self.hosts
        if not http10 and hosts != 1:
            raise Refused("bad_request", "HTTP/1.1 needs exactly one Host header")
        if hosts != 1:
            host: str | None = ""
        elif self.host_value == self.host_seen:
            host = self.host_name
        else:
            host = self.host_name = _host_name(self.host_value)
            self.host_seen = self.host_value
        if hosts > 1 or host is None:
            raise Refused("bad_request", "invalid Host header")
        assert host is not None
        if authority is not None:
            # RFC 9112 §3.2.2: the absolute-form target's authority replaces Host.
            self.fields = [(n, v) for n, v in self.fields if n.lower() != _HOST]
            self.fields.insert(0, (b"Host", authority))
            self.host_value = authority
            host = split_host(authority)
        return host

    def _drop_nominated(self, tokens: frozenset[bytes]) -> None:
        """Connection-nominated fields are hop-by-hop (RFC 9110 §7.6.1); Host never is: a
        client must not make the gateway send a request without one."""
        kept = [(n, v) for n, v in self.fields if n.lower() not in tokens or n.lower() == _HOST]
        if len(kept) != len(self.fields):
            self.fields = kept
            self.consumed = True


def absolute_form(target: bytes) -> tuple[bytes, bytes] | None:
    """`http://host:port/p?q` -> (b"host:port", b"/p?q"); None when not a valid http(s) URI."""
    lowered = target[:8].lower()
    if not (lowered.startswith(b"http://") or lowered.startswith(b"https://")):
        return None
    try:
        url = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        return None
    # httptools' stub types every part as present, but each is None when absent (read as
    # declared, the compiled build would raise TypeError on `http://a` or a target without
    # a query): all are read as optional.
    parsed: Any = url
    host: bytes | None = parsed.host
    port: int | None = parsed.port
    if not host:
        return None
    authority = host if port is None else host + b":" + str(port).encode()
    if not valid_host(authority):
        return None
    path: bytes | None = parsed.path
    query: bytes | None = parsed.query
    target = path or b"/"
    if query:
        target += b"?" + query
    return authority, target
