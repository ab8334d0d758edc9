"""HTTP/2 attack limits: the compiled settings and the per-connection guard that applies them.

`H2Limits` is what `server.http2` compiles to (http/h2/config.py). `Guard` keeps one client
connection's accounts and decides, as a value, when the connection must end: sans-I/O, the
caller passes the monotonic time. What it counts (the `reason` label of
`edgeward_h2_glitches_total`):

    rapid_reset    the client reset a stream before its response completed (CVE-2023-44487):
                   more than max_reset_ratio of the connection's streams, judged once
                   reset_min_streams were opened
    stream_burst   one read opened more than max_streams_per_read streams
    server_reset   the gateway reset a stream because of what the client sent (MadeYouReset,
                   CVE-2025-8671); also a glitch
    ping, settings, empty_frame, window_update
                   suspicious but legal frames, each a glitch
    flood          the codec's own limits tripped (queued acknowledgements, CONTINUATION
                   count, header list size, its own reset and glitch budgets)
    protocol       the client broke the protocol (the codec ended the connection)

Glitches share one token bucket per connection (glitch_burst, refilled at glitch_rate per
second), HAProxy's idea: an honest client stays far below it whatever it does legally.
"""

from __future__ import annotations

from typing import Final

RAPID_RESET: Final = "rapid_reset"
STREAM_BURST: Final = "stream_burst"
SERVER_RESET: Final = "server_reset"
PING: Final = "ping"
SETTINGS: Final = "settings"
EMPTY_FRAME: Final = "empty_frame"
WINDOW_UPDATE: Final = "window_update"
FLOOD: Final = "flood"
PROTOCOL: Final = "protocol"
REASONS: Final = (RAPID_RESET, STREAM_BURST, SERVER_RESET, PING, SETTINGS, EMPTY_FRAME,
                  WINDOW_UPDATE, FLOOD, PROTOCOL)
# WINDOW_UPDATE frames are expected as the response body flows; beyond this many per DATA
# frame the gateway sent (plus a fixed allowance), each is a glitch (Envoy's
# max_inbound_window_update_frames_per_data_frame_sent: 10).
WINDOW_UPDATES_PER_DATA: Final = 10
WINDOW_UPDATE_ALLOWANCE: Final = 100
# A bucket is spent below this, not below 0: a refill computed from float times may fall a
# rounding error short of a whole token a client earned by waiting 1/glitch_rate.
_SPENT: Final = -1e-6
# The first SETTINGS frame of a connection is the preface's, not a glitch.
FREE_SETTINGS: Final = 1


class H2Limits:
    """The HTTP/2 settings of a listener (see http/h2/config.py for each default)."""

    __slots__ = ("max_concurrent_streams", "initial_stream_window", "initial_connection_window",
                 "max_continuations", "hpack_table_size", "max_header_bytes", "max_headers",
                 "max_reset_ratio", "reset_min_streams", "max_streams_per_read",
                 "glitch_burst", "glitch_rate", "max_outbound_control")

    def __init__(self, *, max_concurrent_streams: int = 100,
                 initial_stream_window: int = 65536,
                 initial_connection_window: int = 1 << 20, max_continuations: int = 8,
                 hpack_table_size: int = 4096, max_header_bytes: int = 32 * 1024,
                 max_headers: int = 100, max_reset_ratio: float = 0.5,
                 reset_min_streams: int = 100, max_streams_per_read: int = 200,
                 glitch_burst: int = 1000, glitch_rate: float = 100.0,
                 max_outbound_control: int = 1000) -> None:
        self.max_concurrent_streams = max_concurrent_streams
        self.initial_stream_window = initial_stream_window
        self.initial_connection_window = initial_connection_window
        self.max_continuations = max_continuations
        self.hpack_table_size = hpack_table_size
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.max_reset_ratio = max_reset_ratio
        self.reset_min_streams = reset_min_streams
        self.max_streams_per_read = max_streams_per_read
        self.glitch_burst = glitch_burst
        self.glitch_rate = glitch_rate
        self.max_outbound_control = max_outbound_control


class Guard:
    """One connection's accounts against its limits. Each method returns the reason the
    connection must end (one of REASONS), or "" to carry on."""

    __slots__ = ("limits", "streams", "resets", "read_streams", "tokens", "at",
                 "settings", "data_sent", "window_updates")

    def __init__(self, limits: H2Limits, now: float) -> None:
        self.limits = limits
        self.streams = 0        # streams the client opened
        self.resets = 0         # of them, reset by the client before their response ended
        self.read_streams = 0   # streams opened by the read being handled
        self.tokens = float(limits.glitch_burst)
        self.at = now
        self.settings = 0
        self.data_sent = 0      # DATA frames (sends) the gateway made
        self.window_updates = 0

    def new_read(self) -> None:
        self.read_streams = 0

    def stream_opened(self) -> str:
        self.streams += 1
        self.read_streams += 1
        if self.read_streams > self.limits.max_streams_per_read:
            return STREAM_BURST
        return ""

    def client_reset(self, premature: bool) -> str:
        """The client reset a stream; `premature`: before its response completed."""
        if not premature:
            return ""
        self.resets += 1
        limits = self.limits
        if (self.streams >= limits.reset_min_streams
                and self.resets > limits.max_reset_ratio * self.streams):
            return RAPID_RESET
        return ""

    def glitch(self, reason: str, now: float) -> str:
        """One suspicious event: `reason` when the connection's allowance is spent."""
        limits = self.limits
        tokens = self.tokens + (now - self.at) * limits.glitch_rate
        self.at = now
        if tokens > limits.glitch_burst:
            tokens = float(limits.glitch_burst)
        tokens -= 1.0
        self.tokens = tokens
        return reason if tokens < _SPENT else ""

    def settings_received(self, now: float) -> str:
        self.settings += 1
        return self.glitch(SETTINGS, now) if self.settings > FREE_SETTINGS else ""

    def window_update(self, now: float) -> str:
        self.window_updates += 1
        allowed = (WINDOW_UPDATE_ALLOWANCE + WINDOW_UPDATES_PER_DATA * self.data_sent
                   + 2 * self.streams)
        return self.glitch(WINDOW_UPDATE, now) if self.window_updates > allowed else ""
