"""Protocol-neutral request and response heads, passed between codecs, exchange and filters.

A server codec (HTTP/1.1 now; HTTP/2 later) turns what it read into a `RequestHead`: method,
target, host, the end-to-end header fields (hop-by-hop and framing fields removed) and the
body's framing as `body_length` (NO_BODY, a length, or STREAMED when unknown). A client codec
turns an upstream's answer into a `ResponseHead` the same way. Neither carries wire bytes
except its headers' `wire`: the head as received, which the opposite codec may send on
unchanged while nothing altered it (`relayable()`), because writing it again costs more than
the rest of the request's handling (see `edgeward.http.fields`).

`RequestHead` is also the `Request` of the public filter API (see `edgeward.filters`) and the
`RequestView` the governance core reads (route match, split rules, hash and limit keys).
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qsl

from edgeward.auth.consumer import Consumer
from edgeward.http.cookies import parse_cookies
from edgeward.http.fields import Headers

NO_BODY: Final = 0
STREAMED: Final = -1  # a body of unknown length: chunked on HTTP/1.1

# What a filter may set as a path: an absolute path of visible ASCII, no query or fragment.
_PATH_OK: Final = re.compile(r"/[!$&'()*+,;=:@%/A-Za-z0-9._~-]*")


class ClientCert:
    """The client certificate a TLS listener verified (mTLS), as filters read it.

    `subject` in RFC 4514 form (`CN=client,O=Example`), `dns`, `uris` and `emails` from its
    subjectAltName, `sha256` the hex digest of its DER (a stable identity for pinning), and
    `forwarded` the value sent upstream in `server.client_cert_header`, in Envoy's
    x-forwarded-client-cert form: `Hash=...;Subject="...";URI=...;DNS=...`. `cn` is the
    subject's common name when it has exactly one ("" otherwise: several CNs are ambiguous).
    """

    __slots__ = ("subject", "dns", "uris", "emails", "sha256", "forwarded", "cn")

    def __init__(self, subject: str, dns: tuple[str, ...], uris: tuple[str, ...],
                 emails: tuple[str, ...], sha256: str, forwarded: bytes, cn: str = "") -> None:
        self.subject = subject
        self.dns = dns
        self.uris = uris
        self.emails = emails
        self.sha256 = sha256
        self.forwarded = forwarded
        self.cn = cn

    def __repr__(self) -> str:
        return f"<ClientCert {self.subject}>"


class RequestHead:
    """One request as the exchange and the filters see it."""

    __slots__ = (
        "method", "target", "_path", "_query_string", "host", "authority", "headers",
        "body_length", "client_ip", "peer_ip", "request_id", "scheme", "id_line",
        "expect_continue", "keep_alive", "http10", "trace", "upstream", "route_name",
        "body_received", "trailers", "owned", "started", "_vars", "_cookies", "_query",
        "consumer", "auth_result", "client_cert", "upgrade", "subset",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        path: str,
        host: str,
        authority: bytes,
        headers: Headers,
        body_length: int,
        client_ip: str,
        request_id: str = "",
        scheme: str = "http",
    ) -> None:
        self.method = method
        self.target = target          # origin-form: path and query, as forwarded
        self._path = path             # path without query (normalised by the codec)
        self._query_string: str | None = None  # from the target when first asked for
        self.host = host              # lower-case, no port: what routes match
        self.authority = authority    # the Host header value as received
        self.headers = headers        # end-to-end fields in arrival order, Host included
        self.body_length = body_length  # NO_BODY, n > 0, or STREAMED
        self.client_ip = client_ip    # the client: the peer, or the trusted X-Forwarded-For hop
        self.peer_ip = client_ip      # the TCP peer
        self.request_id = request_id
        self.scheme = scheme
        self.id_line = b""            # `x-request-id: ID\r\n`, sent both ways
        self.expect_continue = False  # the client waits for 100 Continue before its body
        self.keep_alive = True        # the client lets the connection carry another request
        self.http10 = False           # an HTTP/1.0 client: no chunked responses, no 100
        self.trace: object | None = None  # the request's trace identity, when tracing is on
        # The upstream it goes to: the route's (set when routed), or a filter's choice.
        self.upstream: str | None = None
        self.route_name = ""          # the matched route's name ("" before routing)
        self.body_received = 0        # request body bytes read so far
        self.trailers: Headers | None = None  # request trailers, once the body has ended
        self.owned = 0                # OWN_* bits: gateway-owned fields the client sent
        self.started = 0.0            # monotonic clock when the exchange began
        # Set by an authentication filter (edgeward.auth): who is calling, and how the route's
        # authentication went as (method, outcome), e.g. ("jwt", "ok"); None when no
        # authentication ran. Never read from anything the client sent.
        self.consumer: Consumer | None = None
        self.auth_result: tuple[str, str] | None = None
        # The verified client certificate of an mTLS connection (None on plain and non-mTLS
        # listeners); set by the listener from the handshake, never from request fields.
        self.client_cert: ClientCert | None = None
        # The protocol a client asks to switch to (only b"websocket" gets this far: the codec
        # refuses other upgrades); None for a plain request.
        self.upgrade: bytes | None = None
        # Set by the `subset` filter: label selectors to try in order (None in it: any
        # endpoint of the upstream); None: the whole upstream (docs/locality.md).
        self.subset: tuple[tuple[tuple[str, str], ...] | None, ...] | None = None
        self._vars: dict[str, object] | None = None
        self._cookies: dict[str, str] | None = None
        self._query: dict[str, str] | None = None

    # path and target ----------------------------------------------------------------------
    @property
    def path(self) -> str:
        return self._path

    @path.setter
    def path(self, value: str) -> None:
        """Forward to another path (the query string stays)."""
        if _PATH_OK.fullmatch(value) is None:
            raise ValueError(f"not an absolute path of visible ASCII: {value!r}")
        self._path = value
        self._retarget()

    @property
    def query_string(self) -> str:
        """The query, without "?" ("" for none)."""
        found = self._query_string
        if found is None:
            q = self.target.find(b"?")
            found = self._query_string = self.target[q + 1:].decode("latin-1") if q >= 0 else ""
        return found

    @query_string.setter
    def query_string(self, value: str) -> None:
        """Forward with another query string ("" for none)."""
        if not value.isascii() or any(c in value for c in " #\r\n\t\x00"):
            raise ValueError(f"not a query string of visible ASCII: {value!r}")
        self._query_string = value
        self._query = None
        self._retarget()

    def _retarget(self) -> None:
        target = self._path.encode("ascii")
        query = self.query_string
        if query:
            target += b"?" + query.encode("ascii")
        self.target = target
        headers = self.headers
        wire = headers.wire
        if wire is not None:
            # The request line changed: the relayed head gets the new one in place of the
            # received one (method and version as received), its fields still relayed.
            end = wire.find(b"\r\n")
            line = wire[:end] if end >= 0 else wire
            method_end = line.find(b" ")
            version_at = line.rfind(b" ")
            if 0 < method_end < version_at:
                headers.wire = line[:method_end + 1] + target + line[version_at:] + wire[len(line):]
            else:
                headers.wire = None

    def relayable(self) -> bool:
        """The headers' wire still says what this head says, less what was added."""
        return self.headers.wire is not None

    # RequestView ---------------------------------------------------------------------------
    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def cookie(self, name: str) -> str | None:
        jar = self._cookies
        if jar is None:
            raw = self.headers.get("cookie")
            jar = self._cookies = parse_cookies(raw) if raw else {}
        return jar.get(name)

    def query(self, name: str) -> str | None:
        index = self._query
        if index is None:
            index = self._query = {}
            for k, v in parse_qsl(self.query_string, keep_blank_values=True):
                index.setdefault(k, v)
        return index.get(name)

    # filters' per-request state ------------------------------------------------------------
    @property
    def vars(self) -> dict[str, object]:
        """Per-request values filters share (created on first use)."""
        found = self._vars
        if found is None:
            found = self._vars = {}
        return found

    def __repr__(self) -> str:
        return f"<RequestHead {self.method} {self.host}{self._path} id={self.request_id}>"


class ResponseHead:
    """A response as the exchange and the filters see it: status, fields, body framing.

    A client codec gives the head it received as `raw` (status line and fields, framing
    included); `headers` is parsed from it when first asked for, so a response nobody looks
    at is relayed without being taken apart. Fields the gateway adds before then with their
    lines ready (`append_block`) are appended to `raw` itself.
    """

    __slots__ = ("status", "_headers", "raw", "body_length", "relay_status", "relay_length",
                 "trailers")

    def __init__(self, status: int, headers: Headers | None, body_length: int,
                 raw: bytes = b"") -> None:
        self.status = status
        self._headers = headers       # None: not parsed from `raw` yet
        self.raw = raw
        self.body_length = body_length  # NO_BODY, n > 0, or STREAMED
        # The received head stays valid while status, fields and body length are what they
        # were (`relayable()`).
        self.relay_status = status
        self.relay_length = body_length
        self.trailers: Headers | None = None

    @property
    def headers(self) -> Headers:
        """End-to-end fields (no framing, no hop-by-hop ones)."""
        found = self._headers
        if found is None:
            fields = parse_fields(self.raw)
            found = self._headers = Headers(fields, self.raw, len(fields))
        return found

    def reset(self, status: int, fields: list[tuple[bytes, bytes]], body_length: int) -> None:
        """Become another response (a cache answering with a stored one in place of the
        upstream's 304 or error): status, fields and body length replaced, nothing relayed."""
        self.status = status
        self._headers = Headers(fields)
        self.raw = b""
        self.body_length = body_length
        self.trailers = None

    def append_block(self, fields: list[tuple[bytes, bytes]], block: bytes) -> None:
        """The gateway's own fields with their lines (see `Headers.append_block`), added
        without taking the received head apart."""
        found = self._headers
        if found is not None:
            found.append_block(fields, block)
        else:
            self.raw = self.raw + block

    def drop_fields(self, names: frozenset[bytes]) -> None:
        """Remove every field whose lower-case name is in `names`. Before anyone asked for
        `headers`, the lines are cut from the received head itself, which stays relayable (a
        filter that removes and adds fields never makes the codec write the head again)."""
        found = self._headers
        if found is not None:
            for name in names:
                found.remove(name.decode("latin-1"))
            return
        raw = self.raw
        lowered = raw.lower()
        cuts: list[tuple[int, int]] = []
        for name in names:
            needle = b"\n" + name + b":"  # a field line starts after a line's LF
            at = lowered.find(needle)
            while at >= 0:
                begin = at + 1
                stop = lowered.find(b"\r\n", begin)
                stop = len(raw) if stop < 0 else stop + 2
                cuts.append((begin, stop))
                at = lowered.find(needle, stop - 1)
        if not cuts:
            return
        cuts.sort()
        pieces: list[bytes] = []
        prev = 0
        for begin, stop in cuts:
            pieces.append(raw[prev:begin])
            prev = stop
        pieces.append(raw[prev:])
        self.raw = b"".join(pieces)

    def wire(self) -> bytes | None:
        """The head's bytes as received plus what was added, when nothing was parsed (then
        nothing could have been changed but through `append_block`); None otherwise."""
        return self.raw if self._headers is None else None

    def relayable(self) -> bool:
        if self.status != self.relay_status or self.body_length != self.relay_length:
            return False
        found = self._headers
        return found.wire is not None if found is not None else bool(self.raw)

    def __repr__(self) -> str:
        return f"<ResponseHead {self.status} body_length={self.body_length}>"


def parse_fields(raw: bytes) -> list[tuple[bytes, bytes]]:
    """The fields of a head a parser has checked (its first line is the status or request
    line), less Content-Length (framing is the codecs')."""
    fields: list[tuple[bytes, bytes]] = []
    lines = raw.split(b"\r\n")
    for i in range(1, len(lines)):
        line = lines[i]
        if line:
            name, _, value = line.partition(b":")
            if name.lower() != b"content-length":
                fields.append((name, value.strip(b" \t")))
    return fields
