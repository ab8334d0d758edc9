"""The HTTP/2 frame codec, server side: the one module that calls ngh2 (libnghttp2).

`H2Codec` wraps an `ngh2.Connection` so the codec can be swapped without the connection
(http/h2/server.py) noticing: bytes go in with `feed`, and what they meant comes out as calls
on a `CodecSink`; the connection's answers go in with `respond`/`data`/`trailers`/... and
their frames come out of `pending()`. No I/O happens here.

nghttp2 enforces RFC 9113 framing and §8 message rules itself (pseudo-header order and
set, connection-specific fields, uppercase names, Content-Length against DATA: the stream is
reset with PROTOCOL_ERROR and reported closed with an error), and its own DoS limits, which
the listener's `server.http2` settings feed: header list size and count, CONTINUATION count,
queued acknowledgements. Flow control is manual (`auto_window_update=False`): received DATA
is acknowledged with `ack` only as the exchange consumes it.
"""

from __future__ import annotations

import struct
from typing import Final

import ngh2

from edgeward.http.h2.limits import FLOOD, PROTOCOL, H2Limits

Fields = tuple[tuple[bytes, bytes], ...]

NO_ERROR: Final = 0x0
PROTOCOL_ERROR: Final = 0x1
INTERNAL_ERROR: Final = 0x2
REFUSED_STREAM: Final = 0x7
CANCEL: Final = 0x8
ENHANCE_YOUR_CALM: Final = 0xB
# RFC 9113 §4.3: a field costs its name, its value and 32 octets in SETTINGS_MAX_HEADER_LIST_SIZE.
_FIELD_OVERHEAD: Final = 32
# Pseudo-header fields a request carries besides its regular ones (:method, :scheme,
# :authority, :path, and :protocol for extended CONNECT).
_PSEUDO_FIELDS: Final = 5
_MAX_STREAM_ID: Final = 2**31 - 1
_DEFAULT_WINDOW: Final = 65535
_SPENT: Final = b"-"  # `final` once its GOAWAY was handed out


class CodecSink:
    """What the codec reports of the client's frames (implemented by the connection)."""

    def on_request(self, stream_id: int, headers: Fields, end_stream: bool) -> None:
        raise NotImplementedError

    def on_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        raise NotImplementedError

    def on_trailers(self, stream_id: int, headers: Fields) -> None:
        raise NotImplementedError

    def on_reset(self, stream_id: int, error_code: int) -> None:
        """The client reset the stream (RST_STREAM)."""
        raise NotImplementedError

    def on_closed(self, stream_id: int, error_code: int, by_codec: bool) -> None:
        """The stream is gone; `by_codec`: the codec reset it for what the client sent."""
        raise NotImplementedError

    def on_window(self, stream_id: int) -> None:
        """The client opened flow-control window (0: the connection's)."""
        raise NotImplementedError

    def on_control(self, kind: int) -> None:
        """A PING, SETTINGS or GOAWAY frame arrived (CONTROL_*)."""
        raise NotImplementedError


CONTROL_PING: Final = 1
CONTROL_SETTINGS: Final = 2
CONTROL_GOAWAY: Final = 3


class H2Codec:
    """One server-side HTTP/2 connection's frame state (see the module docstring)."""

    __slots__ = ("conn", "last_stream", "final")

    def __init__(self, limits: H2Limits) -> None:
        config = ngh2.Configuration(
            auto_window_update=False,
            max_deflate_dynamic_table_size=limits.hpack_table_size,
            max_outbound_ack=limits.max_outbound_control,
            max_continuations=limits.max_continuations,
            max_inbound_header_list_size=(limits.max_header_bytes
                                          + _FIELD_OVERHEAD * limits.max_headers),
            max_inbound_header_count=limits.max_headers + _PSEUDO_FIELDS,
        )
        self.conn = ngh2.Connection(ngh2.Role.SERVER, config)
        self.last_stream = 0
        self.final = b""  # the GOAWAY owed after the engine gave up on the connection
        self.conn.initiate_connection({
            ngh2.Setting.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
            ngh2.Setting.INITIAL_WINDOW_SIZE: limits.initial_stream_window,
            ngh2.Setting.HEADER_TABLE_SIZE: limits.hpack_table_size,
            ngh2.Setting.MAX_HEADER_LIST_SIZE: (limits.max_header_bytes
                                                + _FIELD_OVERHEAD * limits.max_headers),
            ngh2.Setting.ENABLE_PUSH: 0,
        })
        if limits.initial_connection_window > _DEFAULT_WINDOW:
            self.conn.set_local_window_size(limits.initial_connection_window)

    # the client's bytes ----------------------------------------
    def feed(self, data: bytes, sink: CodecSink) -> str:
        """Hand `data` over; report what it meant to `sink`. Returns FLOOD or PROTOCOL when
        the engine ended the connection for it (its GOAWAY is in `pending()`), else ""."""
        conn = self.conn
        try:
            conn.receive_data(data)
            events = conn.events()
        except ngh2.DenialOfServiceError:
            self._give_up(ENHANCE_YOUR_CALM)
            return FLOOD
        except ngh2.NGH2Error:
            self._give_up(PROTOCOL_ERROR)
            return PROTOCOL
        self._dispatch(events, sink)
        if not conn.want_read and not conn.want_write and not self.final:
            return PROTOCOL  # the engine sent GOAWAY for a connection error and is done
        return ""

    def _dispatch(self, events: list[ngh2.Event], sink: CodecSink) -> None:
        for event in events:
            kind = type(event)
            if kind is ngh2.DataReceived:
                assert isinstance(event, ngh2.DataReceived)
                sink.on_data(event.stream_id, event.data, event.end_stream)
            elif kind is ngh2.RequestReceived:
                assert isinstance(event, ngh2.RequestReceived)
                if event.stream_id > self.last_stream:
                    self.last_stream = event.stream_id
                sink.on_request(event.stream_id, _plain(event.headers), event.end_stream)
            elif kind is ngh2.StreamClosed:
                assert isinstance(event, ngh2.StreamClosed)
                sink.on_closed(event.stream_id, event.error_code,
                               event.local_error is not None)
            elif kind is ngh2.TrailersReceived:
                assert isinstance(event, ngh2.TrailersReceived)
                sink.on_trailers(event.stream_id, _plain(event.headers))
            elif kind is ngh2.StreamReset:
                assert isinstance(event, ngh2.StreamReset)
                sink.on_reset(event.stream_id, event.error_code)
            elif kind is ngh2.WindowUpdated:
                assert isinstance(event, ngh2.WindowUpdated)
                sink.on_window(event.stream_id)
            elif kind is ngh2.PingReceived:
                sink.on_control(CONTROL_PING)
            elif kind is ngh2.SettingsReceived:
                sink.on_control(CONTROL_SETTINGS)
            elif kind is ngh2.GoAwayReceived:
                sink.on_control(CONTROL_GOAWAY)

    def _give_up(self, code: int) -> None:
        """The engine can no longer write: the GOAWAY is written here."""
        self.final = goaway_frame(self.last_stream, code)

    # the gateway's frames ----------------------------------------
    def respond(self, stream_id: int, headers: list[tuple[bytes, bytes]],
                end_stream: bool) -> bool:
        try:
            self.conn.send_response(stream_id, headers, end_stream=end_stream)
        except ngh2.NGH2Error:
            return False  # the stream is gone (reset by the client meanwhile)
        return True

    def informational(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        try:
            self.conn.send_informational_response(stream_id, headers)
        except ngh2.NGH2Error:
            pass

    def data(self, stream_id: int, data: bytes, end_stream: bool) -> bool:
        try:
            self.conn.send_data(stream_id, data, end_stream=end_stream)
        except ngh2.NGH2Error:
            return False
        return True

    def trailers(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        try:
            self.conn.send_trailers(stream_id, headers)
        except ngh2.NGH2Error:
            pass

    def end(self, stream_id: int) -> None:
        try:
            self.conn.end_stream(stream_id)
        except ngh2.NGH2Error:
            pass

    def reset(self, stream_id: int, code: int) -> None:
        try:
            self.conn.reset_stream(stream_id, code)
        except ngh2.NGH2Error:
            pass

    def ack(self, stream_id: int, amount: int) -> None:
        """`amount` bytes of the stream's DATA were consumed: the client may send more."""
        try:
            self.conn.acknowledge_received_data(amount, stream_id)
        except ngh2.NGH2Error:
            pass

    def queued(self, stream_id: int) -> int:
        """Response body bytes of the stream waiting for the client's window."""
        try:
            return self.conn.queued_body_size(stream_id)
        except ngh2.NGH2Error:
            return 0

    def goaway(self) -> None:
        """Graceful: no new streams past the last one received; those finish."""
        try:
            self.conn.send_goaway(NO_ERROR)
        except ngh2.NGH2Error:
            pass

    def terminate(self, code: int) -> None:
        """End the connection now with GOAWAY `code`."""
        if self.final:
            return
        try:
            self.conn.terminate_connection(code)
        except ngh2.NGH2Error:
            self._give_up(code)

    def pending(self, sink: CodecSink) -> bytes:
        """The frames to write now. Streams close as their last frame is written (a reset
        one as its RST_STREAM is): those closes are reported to `sink` here."""
        final = self.final
        if final:
            self.final = _SPENT  # written once; the connection is over
            return b"" if final is _SPENT else final
        conn = self.conn
        try:
            out = conn.data_to_send()
            events = conn.events()
        except ngh2.NGH2Error:
            return b""
        if events:
            self._dispatch(events, sink)
        return out

    @property
    def finished(self) -> bool:
        """Nothing more will be read or written: close the transport once `pending()` is out."""
        return bool(self.final) or (not self.conn.want_read and not self.conn.want_write)


def _plain(headers: tuple[ngh2.Header, ...]) -> Fields:
    return headers  # NeverIndexedHeader is a (name, value) pair too


def goaway_frame(last_stream_id: int, code: int) -> bytes:
    """A GOAWAY frame (RFC 9113 §6.8), for when the engine can no longer write one."""
    return struct.pack(">I", 8)[1:] + b"\x07\x00" + b"\x00\x00\x00\x00" + struct.pack(
        ">II", min(last_stream_id, _MAX_STREAM_ID), code)
