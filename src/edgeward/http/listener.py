"""What every client connection of one worker shares: the listener's limits and live state.

`ListenerSettings` is compiled from the `server:` config section (defaults below, each with its
precedent) and may be swapped whole on reload; connections read it per use. `ListenerState`
holds the handler factory (the exchange maker, which carries the config snapshot in force),
the open connections, the drain flag and the codec-level counters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

from edgeward.http.h2.limits import H2Limits
from edgeward.http.headers import ForwardedPolicy, RequestIds
from edgeward.http.message import ClientCert
from edgeward.http.stream import HandlerFactory
from edgeward.http.tunnel import Tunnel
from edgeward.http.ws_endpoint import WebSocket

# What the listener asks of a TLS connection's `ssl_object` for its verified client
# certificate (tls/peer.py makes it); None on a listener without client certificates.
PeerCert = Callable[[object], ClientCert | None]

# HAProxy's recommended `timeout http-request 10s`: long enough for any honest client on a
# slow link to send a request head, short enough to defuse slowloris.
DEFAULT_HEADER_TIMEOUT: Final = 10.0
# nginx keepalive_timeout 75s: longer than the 60 s idle timeout of common load balancers in
# front, so the gateway is never the side that closes a connection the balancer reuses.
DEFAULT_IDLE_TIMEOUT: Final = 75.0
# nginx client_body_timeout 60s: the longest wait between two reads of a request body. It
# bounds a stalled upload without bounding a slow one.
DEFAULT_BODY_TIMEOUT: Final = 60.0
# nginx large_client_header_buffers 8k bounds one request line.
DEFAULT_MAX_REQUEST_LINE: Final = 8 * 1024
# nginx: 4 x 8k; Envoy 60 KiB. 32 KiB admits large cookies and JWTs.
DEFAULT_MAX_HEADER_BYTES: Final = 32 * 1024
# Envoy's max_headers_count default: 100 fields in a request head.
DEFAULT_MAX_HEADERS: Final = 100
# Pipelined requests parsed ahead of their turn before reading pauses (memory bound).
DEFAULT_MAX_PIPELINED: Final = 16
# The issue contract: SIGTERM waits up to 10 s for in-flight requests.
DEFAULT_DRAIN_TIMEOUT: Final = 10.0
# Request bodies up to this size can be replayed (retries, keep-alive race). Envoy's buffer
# limit is 1 MiB; typical API bodies are far below 64 KiB.
DEFAULT_REPLAY_LIMIT: Final = 64 * 1024

# server.headers_with_underscores: CGI/WSGI-style origins fold `_` into `-`, so
# `Transfer_Encoding` could frame a body for them; nginx drops such names by default
# (underscores_in_headers off), Envoy can drop or reject them.
UNDERSCORES_DROP: Final = "drop"
UNDERSCORES_REJECT: Final = "reject"
UNDERSCORES_ALLOW: Final = "allow"


class ListenerSettings:
    """Per-listener limits, compiled from the `server:` config section."""

    __slots__ = (
        "header_timeout", "idle_timeout", "body_timeout", "max_request_line",
        "max_header_bytes", "max_headers", "max_pipelined", "forwarded",
        "underscores", "path_normalization", "max_connections", "codes", "client_cert_header",
        "http2",
    )

    def __init__(
        self,
        *,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        max_request_line: int = DEFAULT_MAX_REQUEST_LINE,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_pipelined: int = DEFAULT_MAX_PIPELINED,
        trusted_proxies: list[str] | None = None,
        underscores: str = UNDERSCORES_DROP,
        path_normalization: str = "normalize",
        max_connections: int = 0,
        codes: dict[str, str] | None = None,
        client_cert_header: str | None = None,
        http2: H2Limits | None = None,
    ) -> None:
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.body_timeout = body_timeout
        self.max_request_line = max_request_line
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.max_pipelined = max_pipelined
        self.forwarded = ForwardedPolicy(trusted_proxies or [])
        self.underscores = underscores
        self.path_normalization = path_normalization
        # Client connections open at once (0: no limit); more are closed as they come.
        self.max_connections = max_connections
        # Error codes this listener answers refusals with instead of the catalogue's names
        # (the admin API kept its own names for two of them).
        self.codes = codes or {}
        # The request field that carries a verified client certificate upstream: removed
        # from every request whatever the listener, set only from a verified certificate.
        self.client_cert_header: bytes | None = (
            client_cert_header.lower().encode("ascii") if client_cert_header else None)
        # HTTP/2 (server.http2): its limits, or None when only HTTP/1.1 is served.
        self.http2 = http2


class Connection(Protocol):
    """What the worker needs of a client connection to drain it."""

    def close_if_idle(self) -> bool: ...
    def abort(self) -> None: ...


class ListenerState:
    """What all connections of one listener of a worker share."""

    __slots__ = ("settings", "factory", "ids", "connections", "tunnels", "endpoints",
                 "draining",
                 "underscore_headers", "refused_connections", "scheme", "response_line",
                 "peer_cert", "h2_closed")

    def __init__(self, settings: ListenerSettings, factory: HandlerFactory, *,
                 scheme: str = "http", response_line: bytes = b"",
                 peer_cert: PeerCert | None = None) -> None:
        self.settings = settings
        # `https` on a TLS listener: requests' scheme (routing, X-Forwarded-Proto, redirects).
        self.scheme = scheme
        # A field line added to every response head (Strict-Transport-Security), or b"".
        self.response_line = response_line
        self.peer_cert = peer_cert
        self.factory = factory
        self.ids = RequestIds()
        self.connections: set[Connection] = set()
        # WebSocket tunnels: their client connections left `connections` when they switched.
        self.tunnels: set[Tunnel] = set()
        # WebSocket connections a filter accepted itself (ws_endpoint), drained like tunnels.
        self.endpoints: set[WebSocket] = set()
        self.draining = False
        self.underscore_headers = 0  # request fields with `_` in their name dropped or refused
        self.refused_connections = 0  # closed at once: max_connections were open
        # HTTP/2 connections ended for a limit, by reason (http/h2/limits.py REASONS).
        self.h2_closed: dict[str, int] = {}
