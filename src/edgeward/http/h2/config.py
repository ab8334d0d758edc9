"""`server.http2:`: whether client connections may speak HTTP/2, and its attack limits.

    server:
      http2:
        enabled: true
        max_concurrent_streams: 100
        initial_stream_window: 64KiB
        initial_connection_window: 1MiB

Every default is a named constant below with its precedent. `limits()` compiles the section
into the `H2Limits` the codec reads (http/h2/limits.py), or None when HTTP/2 is off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from edgeward.http.h2.limits import H2Limits
from edgeward.values import Rate, Size, doc

# On, as Caddy, Traefik and Envoy (nginx needs `http2 on`): HTTP/1.1 clients are unaffected
# (h2c is taken only from a connection that opens with the HTTP/2 preface, h2 over TLS only
# when the client offers it by ALPN), and h2-capable clients get one multiplexed connection.
DEFAULT_ENABLED: Final = True
# Envoy's edge best practice (max_concurrent_streams 100); nginx http2_max_concurrent_streams
# 128; RFC 9113 §6.5.2 recommends no fewer than 100.
DEFAULT_MAX_CONCURRENT_STREAMS: Final = 100
# Envoy edge best practice: initial_stream_window_size 65536 (64 KiB) and
# initial_connection_window_size 1048576 (1 MiB): memory per stream and per connection stays
# small while a fast client still fills a typical bandwidth-delay product.
DEFAULT_INITIAL_STREAM_WINDOW: Final = 64 * 1024
DEFAULT_INITIAL_CONNECTION_WINDOW: Final = 1024 * 1024
# CONTINUATION frames after one HEADERS (CVE-2024-27316 family): nghttp2 1.61's default cap.
DEFAULT_MAX_CONTINUATIONS: Final = 8
# HPACK dynamic table both ways: the RFC 7541 default of 4096 bytes (nginx, Envoy).
DEFAULT_HPACK_TABLE_SIZE: Final = 4096
# Rapid reset (CVE-2023-44487): Envoy closes a connection once more than half of its streams
# were reset by the client before their response completed, judged after
# premature_reset_total_stream_count streams (500); we judge after 100, a tenth of Envoy's
# window per concurrency slot, so one burst of 100 resets is enough.
DEFAULT_MAX_RESET_RATIO: Final = 0.5
DEFAULT_RESET_MIN_STREAMS: Final = 100
# New streams one read may open: nginx 1.25.3 (its CVE-2023-44487 fix) allows twice
# http2_max_concurrent_streams per event loop iteration.
DEFAULT_MAX_STREAMS_PER_READ: Final = 2 * DEFAULT_MAX_CONCURRENT_STREAMS
# HAProxy's "glitches" (tune.h2.fe.glitches-threshold): suspicious but legal frames (PINGs,
# SETTINGS, empty DATA, excess WINDOW_UPDATEs, streams the gateway had to reset) are counted
# per connection in a token bucket; HAProxy suggests a threshold around 1000 per connection,
# Envoy allows 1000 outbound control frames. A burst of 1000 and 100/s refill leaves honest
# clients (a ping per second, a handful of SETTINGS) far below it.
DEFAULT_GLITCH_BURST: Final = 1000
DEFAULT_GLITCH_RATE: Final = 100.0
# Envoy max_outbound_control_frames 1000: queued SETTINGS/PING acknowledgements before the
# connection is closed (a client that floods pings and never reads).
DEFAULT_MAX_OUTBOUND_CONTROL: Final = 1000


@dataclass(frozen=True, kw_only=True)
class Http2Config:
    """`server.http2`: HTTP/2 from clients (h2 by ALPN over TLS, h2c with prior knowledge)."""

    enabled: bool = field(
        default=DEFAULT_ENABLED,
        metadata=doc("serve HTTP/2: h2 by ALPN on TLS listeners, h2c with prior knowledge on "
                     "plain ones (Caddy, Traefik, Envoy: on; nginx: `http2 on`)"))
    max_concurrent_streams: int = field(
        default=DEFAULT_MAX_CONCURRENT_STREAMS,
        metadata=doc("streams a client may have open at once (Envoy edge: 100; nginx 128)"))
    initial_stream_window: Size = field(
        default=DEFAULT_INITIAL_STREAM_WINDOW,
        metadata=doc("request body bytes a client may send on one stream before the gateway "
                     "acknowledges them (Envoy edge: 64KiB)"))
    initial_connection_window: Size = field(
        default=DEFAULT_INITIAL_CONNECTION_WINDOW,
        metadata=doc("the same over all streams of a connection (Envoy edge: 1MiB)"))
    max_continuations: int = field(
        default=DEFAULT_MAX_CONTINUATIONS,
        metadata=doc("CONTINUATION frames after one HEADERS frame (CVE-2024-27316; "
                     "nghttp2: 8); the head's size is bounded by server.max_header_bytes"))
    hpack_table_size: Size = field(
        default=DEFAULT_HPACK_TABLE_SIZE,
        metadata=doc("HPACK dynamic table, decoding and encoding (RFC 7541 default 4096)"))
    max_reset_ratio: float = field(
        default=DEFAULT_MAX_RESET_RATIO,
        metadata=doc("share of a connection's streams the client may reset before their "
                     "response completed (rapid reset, CVE-2023-44487; Envoy: 0.5)"))
    reset_min_streams: int = field(
        default=DEFAULT_RESET_MIN_STREAMS,
        metadata=doc("streams a connection opens before max_reset_ratio is judged"))
    max_streams_per_read: int = field(
        default=DEFAULT_MAX_STREAMS_PER_READ,
        metadata=doc("new streams one read may open (nginx: 2 x max concurrent streams)"))
    glitch_burst: int = field(
        default=DEFAULT_GLITCH_BURST,
        metadata=doc("suspicious frames (PING, SETTINGS, empty DATA, excess WINDOW_UPDATE, "
                     "streams reset by the gateway) a connection may send at once (HAProxy "
                     "glitches)"))
    glitch_rate: Rate = field(
        default=DEFAULT_GLITCH_RATE,
        metadata=doc("how fast that allowance refills, e.g. 100/s"))
    max_outbound_control: int = field(
        default=DEFAULT_MAX_OUTBOUND_CONTROL,
        metadata=doc("queued SETTINGS/PING acknowledgements before the connection is closed "
                     "(Envoy max_outbound_control_frames 1000)"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not 1 <= self.max_concurrent_streams <= 2**31 - 1:
            problems.append(("max_concurrent_streams", "must be between 1 and 2^31-1"))
        for key in ("initial_stream_window", "initial_connection_window"):
            value = getattr(self, key)
            if not 1024 <= value <= 2**31 - 1:
                problems.append((key, f"must be between 1KiB and 2^31-1 bytes, got {value}"))
        if self.initial_connection_window < self.initial_stream_window:
            problems.append(("initial_connection_window",
                             "must be at least initial_stream_window"))
        if self.max_continuations < 0:
            problems.append(("max_continuations", "must be 0 or more"))
        if not 0 <= self.hpack_table_size <= 1 << 20:
            problems.append(("hpack_table_size", "must be between 0 and 1MiB"))
        if not 0.0 < self.max_reset_ratio <= 1.0:
            problems.append(("max_reset_ratio", "must be above 0 and at most 1"))
        if self.reset_min_streams < 1:
            problems.append(("reset_min_streams", "must be at least 1"))
        if self.max_streams_per_read < 1:
            problems.append(("max_streams_per_read", "must be at least 1"))
        if self.glitch_burst < 1:
            problems.append(("glitch_burst", "must be at least 1"))
        if self.glitch_rate <= 0:
            problems.append(("glitch_rate", "must be above 0"))
        if self.max_outbound_control < 1:
            problems.append(("max_outbound_control", "must be at least 1"))
        return problems

    def limits(self, max_header_bytes: int, max_headers: int) -> H2Limits | None:
        """What the codec reads, or None when HTTP/2 is off."""
        if not self.enabled:
            return None
        return H2Limits(
            max_concurrent_streams=self.max_concurrent_streams,
            initial_stream_window=self.initial_stream_window,
            initial_connection_window=self.initial_connection_window,
            max_continuations=self.max_continuations,
            hpack_table_size=self.hpack_table_size,
            max_header_bytes=max_header_bytes,
            max_headers=max_headers,
            max_reset_ratio=self.max_reset_ratio,
            reset_min_streams=self.reset_min_streams,
            max_streams_per_read=self.max_streams_per_read,
            glitch_burst=self.glitch_burst,
            glitch_rate=self.glitch_rate,
            max_outbound_control=self.max_outbound_control,
        )
