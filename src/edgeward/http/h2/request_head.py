"""Building the neutral request head from an HTTP/2 header list (RFC 9113 §8).

The pseudo-header fields come first, once each: `:method`, `:scheme`, `:path` (not empty)
and `:authority`, which becomes the head's Host (a `host` field that disagrees with it is
replaced, §8.3.1). Then regular fields, in lower case; connection-specific ones (`connection`,
`keep-alive`, `proxy-connection`, `transfer-encoding`, `upgrade`) and a `te` other than
`trailers` make the request malformed (§8.2.2), and so does an unknown pseudo-header, a
pseudo-header after a regular field, or an uppercase name: the stream is reset with
PROTOCOL_ERROR (`Malformed`). nghttp2 checks the same before the head gets here; these checks
keep the rule true whatever the codec.

What the gateway refuses of a well-formed request (CONNECT, a bad path, a bad Host, too many
fields) is answered on the stream with its error code (`Refused`), as HTTP/1.1 would be. Cookie
crumbs are joined with "; " into one field for the origin (§8.2.3). The request id, the
underscore policy, the owned forwarding fields and the client-certificate field are handled
as by the HTTP/1.1 codec (http/h1/head.py), whose target and host rules are shared.
"""

from __future__ import annotations

from typing import Final

from edgeward.http.fields import Headers
from edgeward.http.h1.head import HeadBuilder, Refused
from edgeward.http.headers import (
    KIND_CONTENT_LENGTH,
    KIND_EXPECT,
    KIND_HOST,
    KIND_PLAIN,
    KIND_REQUEST_ID,
    KIND_XFF,
    OWNED_BIT,
    RequestIds,
    header_kind,
    split_host,
    valid_host,
)
from edgeward.http.listener import UNDERSCORES_ALLOW, UNDERSCORES_REJECT
from edgeward.http.message import NO_BODY, STREAMED, RequestHead

_METHOD: Final = b":method"
_SCHEME: Final = b":scheme"
_PATH: Final = b":path"
_AUTHORITY: Final = b":authority"
_COOKIE: Final = b"cookie"
_TE: Final = b"te"
_CONNECTION_SPECIFIC: Final = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"})
_METHODS: Final = {m.encode(): m for m in (
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT")}


class Malformed(Exception):
    """The header list breaks RFC 9113 §8: reset the stream with PROTOCOL_ERROR."""


class Pseudo:
    """The pseudo-header fields of one request."""

    __slots__ = ("method", "scheme", "path", "authority")

    def __init__(self) -> None:
        self.method = b""
        self.scheme = b""
        self.path = b""
        self.authority = b""

    def take(self, name: bytes, value: bytes) -> None:
        if name == _METHOD and not self.method:
            self.method = value
        elif name == _PATH and not self.path:
            self.path = value
        elif name == _SCHEME and not self.scheme:
            self.scheme = value
        elif name == _AUTHORITY and not self.authority:
            self.authority = value
        else:
            raise Malformed(f"unknown or repeated pseudo-header {name!r}")


class RequestFields:
    """The regular fields of one request, sorted by what the gateway does with them."""

    __slots__ = ("fields", "cookies", "host", "content_length", "request_id", "owned",
                 "expect_continue", "size")

    def __init__(self) -> None:
        self.fields: list[tuple[bytes, bytes]] = []
        self.cookies: list[bytes] | None = None
        self.host: bytes | None = None
        self.content_length = -1
        self.request_id: bytes | None = None
        self.owned = 0
        self.expect_continue = False
        self.size = 0


def build_head(builder: HeadBuilder, headers: tuple[tuple[bytes, bytes], ...],
               end_stream: bool) -> RequestHead:
    """The request head of `headers` (see the module docstring); `builder` is the
    connection's HTTP/1.1 head builder, for the listener's shared target rules."""
    pseudo = Pseudo()
    found = RequestFields()
    regular = False
    for name, value in headers:
        if name[:1] == b":":
            if regular:
                raise Malformed("pseudo-header after a regular field")
            pseudo.take(name, value)
        else:
            regular = True
            _field(builder, found, name, value)
    return _head(builder, pseudo, found, end_stream)


def _field(builder: HeadBuilder, found: RequestFields, name: bytes, value: bytes) -> None:
    if name.lower() != name:
        raise Malformed("uppercase field name")
    if name in _CONNECTION_SPECIFIC:
        raise Malformed(f"connection-specific field {name!r}")
    state = builder.state
    settings = state.settings
    found.size += len(name) + len(value) + 4
    if found.size > settings.max_header_bytes or len(found.fields) >= settings.max_headers:
        raise Refused("header_too_large")
    if name == _TE:
        if value.strip().lower() != b"trailers":
            raise Malformed("te other than trailers")
        return  # hop-by-hop: the HTTP/1.1 codec drops it too
    if 95 in name and settings.underscores != UNDERSCORES_ALLOW:  # 95: "_"
        state.underscore_headers += 1
        if settings.underscores == UNDERSCORES_REJECT:
            raise Refused("bad_request", "header names with underscores are refused")
        return
    if name == _COOKIE:
        if found.cookies is None:
            found.cookies = [value]
        else:
            found.cookies.append(value)
        return
    kind = header_kind(name)
    if kind == KIND_PLAIN:
        own = settings.client_cert_header
        if own is None or name != own:
            found.fields.append((name, value))
    elif kind == KIND_HOST:
        found.host = value
    elif kind >= KIND_XFF:
        found.owned |= OWNED_BIT[kind]
        found.fields.append((name, value))
    elif kind == KIND_CONTENT_LENGTH:
        if not value.isdigit() or (found.content_length >= 0
                                   and int(value) != found.content_length):
            raise Malformed("invalid content-length")
        found.content_length = int(value)
    elif kind == KIND_REQUEST_ID:
        found.request_id = value
    elif kind == KIND_EXPECT:
        found.expect_continue = value.strip().lower() == b"100-continue"
    # other hop-by-hop names (proxy-authorization and the like): dropped as on HTTP/1.1


def _head(builder: HeadBuilder, pseudo: Pseudo, found: RequestFields,
          end_stream: bool) -> RequestHead:
    raw_method = pseudo.method
    if not raw_method:
        raise Malformed("no :method")
    known = _METHODS.get(raw_method)
    method = known if known is not None else raw_method.decode("ascii", "replace")
    if method == "CONNECT":
        raise Refused("not_implemented", "CONNECT is not forwarded")
    if not pseudo.scheme or not pseudo.path:
        raise Malformed("no :scheme or :path")
    authority = pseudo.authority or found.host
    if not authority or not valid_host(authority):
        raise Refused("bad_request", "invalid or missing :authority")
    host = split_host(authority)
    _, target, path = builder.target_of(method, pseudo.path)
    fields = found.fields
    fields.insert(0, (b"host", authority))
    if found.cookies is not None:
        fields.append((_COOKIE, b"; ".join(found.cookies)))
    state = builder.state
    rid = found.request_id
    if rid is not None and RequestIds.acceptable(rid):
        request_id = rid.decode()
    else:
        request_id = state.ids.new()
        rid = request_id.encode()
    cert = builder.client_cert
    own = state.settings.client_cert_header
    if cert is not None and own is not None:
        fields.append((own, cert.forwarded))
    if end_stream:
        body_length = NO_BODY
    elif found.content_length >= 0:
        body_length = found.content_length if found.content_length > 0 else NO_BODY
    else:
        body_length = STREAMED
    head = RequestHead(method, target, path, host, authority, Headers(fields), body_length,
                       builder.client_ip, request_id, state.scheme)
    head.client_cert = cert
    head.owned = found.owned
    head.id_line = b"x-request-id: " + rid + b"\r\n"
    head.expect_continue = found.expect_continue and not end_stream
    return head
