"""The HTTP/2 client connection (`H2Connection`) without sockets: the real listener, exchange
and HTTP/1.1 upstream codec on fake transports and a fake clock (tests/support/fakes.py), an
`h2` client as the peer (tests/support/h2kit.py).
"""

from __future__ import annotations

import h2.events
import pytest

from edgeward.http.h2.limits import H2Limits
from support.fakes import Harness, Peer
from support.h2kit import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PING,
    SETTINGS,
    FakeH2Client,
    frame,
    frames,
    request,
)

CONFIG = """\
server: {body_timeout: 5s, idle_timeout: 30s}
upstreams:
  main: {targets: ["10.1.0.1:8080"]}
routes:
  - {name: main, match: {host: gw.test}, upstream: main, timeout: 20s}
"""
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def setup(limits: H2Limits | None = None) -> tuple[Harness, FakeH2Client]:
    h = Harness(CONFIG)
    return h, FakeH2Client(h, limits)


def answer(up: Peer, raw: bytes = OK) -> None:
    up.send(raw)


# --- requests and responses --------------------------------------------------------------------
def test_a_stream_becomes_an_http11_request_and_its_answer_comes_back() -> None:
    h, c = setup()
    c.h2.send_headers(1, request("/a?b=1", extra=[(b"cookie", b"x=1"), (b"cookie", b"y=2"),
                                                  (b"accept", b"*/*")]), end_stream=True)
    c.send()
    [up] = h.upstreams
    [req] = up.requests()
    assert (req.method, req.target) == ("GET", "/a?b=1")
    assert req.header("host") == ["gw.test"]
    assert req.header("cookie") == ["x=1; y=2"]  # RFC 9113 §8.2.3: crumbs joined
    answer(up, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n"
               b"keep-alive: timeout=5\r\nx-app: 1\r\n\r\nok")
    head, body, ended = c.response(1)
    assert head[b":status"] == b"200" and body == b"ok" and ended
    assert head[b"x-app"] == b"1" and head[b"content-length"] == b"2"
    assert b"connection" not in head and b"keep-alive" not in head  # RFC 9113 §8.2.2
    assert head[b"x-request-id"] == req.header("x-request-id")[0].encode()


def test_streams_are_multiplexed_and_answered_in_any_order() -> None:
    h, c = setup()
    for sid in (1, 3, 5):
        c.h2.send_headers(sid, request(f"/{sid}"), end_stream=True)
    c.send()
    assert len(h.upstreams) == 3
    for up, body in zip(reversed(h.upstreams), (b"c", b"b", b"a"), strict=True):
        answer(up, b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n" + body)
    assert [c.response(sid)[1] for sid in (1, 3, 5)] == [b"a", b"b", b"c"]


@pytest.mark.parametrize("extra", [
    [(b"Accept", b"x")],                       # uppercase name
    [(b"connection", b"keep-alive")],          # connection-specific
    [(b"transfer-encoding", b"chunked")],
    [(b"upgrade", b"h2c")],
    [(b"te", b"gzip")],                        # TE other than trailers
    [(b"accept", b"x"), (b":path", b"/again")],  # pseudo-header after a regular field
], ids=["uppercase", "connection", "transfer-encoding", "upgrade", "te", "pseudo-after"])
def test_a_malformed_request_resets_its_stream_and_goes_nowhere(
        extra: list[tuple[bytes, bytes]]) -> None:
    h, c = setup()
    c.h2.send_headers(1, request("/", extra=extra), end_stream=True)
    c.send()
    [reset] = c.of(h2.events.StreamReset, 1)
    assert reset.error_code == 1  # PROTOCOL_ERROR
    assert h.connector.attempts == []
    c.h2.send_headers(3, request("/fine"), end_stream=True)  # the connection carries on
    c.send()
    answer(h.upstreams[0])
    assert c.response(3)[1] == b"ok"


@pytest.mark.parametrize(("head", "status", "code"), [
    ([(b":method", b"CONNECT"), (b":authority", b"gw.test:443")], 501, b"not_implemented"),
    (request("/", extra=[(b"x-%d" % i, b"v") for i in range(101)]), 431,
     b"header_too_large"),
    (request("/a/../../etc"), 400, b"bad_request"),
])
def test_a_request_the_gateway_refuses_gets_its_error_on_the_stream(
        head: list[tuple[bytes, bytes]], status: int, code: bytes) -> None:
    h, c = setup()
    c.h2.send_headers(1, head, end_stream=True)
    c.send()
    got, body, ended = c.response(1)
    assert (got.get(b":status"), ended) == (str(status).encode(), True)
    assert code in body
    assert h.connector.attempts == []


def test_route_not_found_is_the_exchanges_404() -> None:
    h, c = setup()
    c.h2.send_headers(1, request("/", authority="other.test"), end_stream=True)
    c.send()
    head, body, _ = c.response(1)
    assert head[b":status"] == b"404" and b"route_not_found" in body


# --- bodies, trailers and flow control ---------------------------------------------------------
def test_request_and_response_trailers_cross_both_ways() -> None:
    h, c = setup()
    c.h2.send_headers(1, request("/up", method="POST"))
    c.h2.send_data(1, b"hello")
    c.h2.send_headers(1, [(b"x-sum", b"42")], end_stream=True)
    c.send()
    [up] = h.upstreams
    [req] = up.requests()
    assert req.body == b"hello" and ("x-sum", "42") in req.trailers
    answer(up, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
               b"2\r\nok\r\n0\r\nx-checksum: 7\r\n\r\n")
    trailers = c.of(h2.events.TrailersReceived, 1)
    assert trailers and dict(trailers[0].headers)[b"x-checksum"] == b"7"
    assert c.response(1)[1] == b"ok"


def test_request_body_is_acknowledged_only_as_the_upstream_takes_it() -> None:
    h, c = setup()
    c.h2.send_headers(1, request("/up", method="POST"))
    c.send()
    [up] = h.upstreams
    up.fill()  # the upstream stops reading: the exchange pauses the stream's body
    for _ in range(3):
        c.h2.send_data(1, b"x" * 16000)
    c.send()
    window = c.h2.local_flow_control_window(1)
    assert window <= 65536 - 48000  # nothing was given back while the upstream was full
    up.drain()
    c.read()
    assert c.h2.local_flow_control_window(1) > window  # given back once it took them


def test_a_client_that_does_not_read_pauses_the_upstream() -> None:
    h, c = setup()
    c.h2.send_headers(1, request("/big"), end_stream=True)
    c.send()
    [up] = h.upstreams
    size = 300_000
    answer(up, b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size + b"y" * 100_000)
    c.read()  # the h2 client acknowledges nothing by itself: its window stays closed
    assert not up.transport.reading  # the upstream is paused: no unbounded buffering
    answer(up, b"y" * 200_000)  # what the kernel holds arrives when reading resumes
    got = sum(len(e.data) for e in c.of(h2.events.DataReceived, 1))
    assert got <= 65535
    for e in c.of(h2.events.DataReceived, 1):
        c.h2.acknowledge_received_data(e.flow_controlled_length, 1)
    c.h2.increment_flow_control_window(size)
    c.h2.increment_flow_control_window(size, 1)
    c.send()
    c.read()
    assert up.transport.reading
    assert c.response(1)[1] == b"y" * size


def test_a_client_reset_cancels_the_upstream_work() -> None:
    h, c = setup()
    c.h2.send_headers(1, request("/slow"), end_stream=True)
    c.send()
    [up] = h.upstreams
    c.h2.reset_stream(1, 8)
    c.send()
    h.run()
    assert up.closed  # the half-done upstream request is not left running
    assert h.done[0].error_code == "client_closed"


def test_body_timeout_applies_per_stream() -> None:
    h, c = setup()
    c.h2.send_headers(1, request("/up", method="POST"))
    c.h2.send_data(1, b"part")
    c.h2.send_headers(3, request("/other"), end_stream=True)
    c.send()
    answer(h.upstreams[1])
    h.advance(6)  # body_timeout 5s: stream 1's body stalled
    head, _, _ = c.response(1)
    assert head.get(b":status") == b"408" or c.of(h2.events.StreamReset, 1)
    assert c.response(3)[1] == b"ok"  # the other stream was answered and is untouched
    assert c.goaway() is None


# --- shutdown and idling -----------------------------------------------------------------------
def test_drain_sends_goaway_and_lets_the_stream_in_flight_finish() -> None:
    h, c = setup()
    c.h2.send_headers(1, request("/slow"), end_stream=True)
    c.send()
    with h.loop.running():
        assert c.conn.close_if_idle() is False
    h.run()
    assert c.goaway() == 0  # NO_ERROR, with stream 1 as the last one served
    after = len(c.transport.data)
    late = frame(HEADERS, END_STREAM | END_HEADERS, 3, c.h2.encoder.encode(request("/late")))
    c.peer.send(late)
    assert len(h.upstreams) == 1  # a stream after GOAWAY is not served
    answer(h.upstreams[0])
    h.run()
    sent = frames(c.transport.data[after:])
    assert (HEADERS, 1) in [(kind, sid) for kind, _, sid, _ in sent]
    assert any(sid == 1 and flags & END_STREAM for _, flags, sid, _ in sent)
    assert c.transport.closed  # once the last stream ended


def test_an_idle_connection_gets_goaway_and_closes() -> None:
    h, c = setup()
    h.advance(31)
    assert c.goaway() == 0 and c.transport.closed


# --- attack limits -----------------------------------------------------------------------------
def closed_for(h: Harness, c: FakeH2Client, reason: str, code: int = 0xB) -> None:
    h.run()
    assert c.goaway() == code
    assert c.transport.closed
    assert h.state.h2_closed == {reason: 1}


def test_rapid_reset_ends_the_connection() -> None:
    h, c = setup(H2Limits(reset_min_streams=10))
    for i in range(12):
        sid = 1 + 2 * i
        c.h2.send_headers(sid, request("/"), end_stream=True)
        c.h2.reset_stream(sid, 8)
    c.send()
    closed_for(h, c, "rapid_reset")
    assert all(up.closed for up in h.upstreams)  # every exchange's upstream work cancelled


def test_many_new_streams_in_one_read_end_the_connection() -> None:
    h, c = setup(H2Limits(max_streams_per_read=5, max_concurrent_streams=100))
    for i in range(6):
        c.h2.send_headers(1 + 2 * i, request("/"), end_stream=True)
    c.send()
    closed_for(h, c, "stream_burst")


def test_a_ping_flood_ends_the_connection() -> None:
    h, c = setup(H2Limits(glitch_burst=20, glitch_rate=1.0))
    c.send(b"".join(frame(PING, 0, 0, b"12345678") for _ in range(25)))
    closed_for(h, c, "ping")


def test_a_settings_flood_ends_the_connection() -> None:
    h, c = setup(H2Limits(glitch_burst=20, glitch_rate=1.0))
    c.send(b"".join(frame(SETTINGS, 0, 0) for _ in range(25)))
    closed_for(h, c, "settings")


def test_empty_data_frames_end_the_connection() -> None:
    h, c = setup(H2Limits(glitch_burst=20, glitch_rate=1.0))
    c.h2.send_headers(1, request("/", method="POST"))
    c.send(b"".join(frame(DATA, 0, 1) for _ in range(25)))
    closed_for(h, c, "empty_frame")


def test_streams_the_gateway_must_reset_count_as_glitches() -> None:
    h, c = setup(H2Limits(glitch_burst=5, glitch_rate=1.0))
    for i in range(7):
        c.h2.send_headers(1 + 2 * i, request("/", extra=[(b"Bad", b"x")]), end_stream=True)
    c.send()
    closed_for(h, c, "server_reset")


def test_a_continuation_flood_ends_the_connection() -> None:
    h, c = setup(H2Limits(max_continuations=4))
    block = c.h2.encoder.encode(request("/"))
    raw = frame(HEADERS, 0, 1, block) + b"".join(frame(CONTINUATION, 0, 1, b"") for _ in range(8))
    c.send(raw)
    h.run()
    assert c.transport.closed
    assert c.goaway() in (0x1, 0xB)  # PROTOCOL_ERROR or ENHANCE_YOUR_CALM
    assert h.connector.attempts == []


def test_one_connections_violation_leaves_the_others_alone() -> None:
    h, bad = setup(H2Limits(glitch_burst=5, glitch_rate=1.0))
    good = FakeH2Client(h, H2Limits(glitch_burst=5, glitch_rate=1.0))
    bad.send(b"".join(frame(PING, 0, 0, b"12345678") for _ in range(10)))
    good.h2.send_headers(1, request("/"), end_stream=True)
    good.send()
    answer(h.upstreams[0])
    assert bad.transport.closed and not good.transport.closed
    assert good.response(1)[1] == b"ok"
