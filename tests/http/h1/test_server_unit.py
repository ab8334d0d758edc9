"""The HTTP/1.1 client connection (`H1Connection`) without sockets: the real listener, exchange
and upstream codec on fake transports and a fake clock (tests/support/fakes.py).

Requests are fed whole and one byte per read. Refusals: the status and JSON code, the
connection closed, and nothing forwarded (no upstream connection even attempted). Accepted
requests: pipelining, flow control, deadlines, the relay of heads as received, trailers.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.fakes import Harness, Peer, get, ok
from support.vectors import REFUSED, H, Refusal, assert_gateway_error

CONFIG = """\
server: {header_timeout: 1s, idle_timeout: 5s, max_request_line: 4KiB, max_header_bytes: 16KiB%s}
upstreams:
  main: {targets: ["10.1.0.1:8080"]}
  alt: {targets: ["10.2.0.1:8080"]}
routes:
  - {name: alt, match: {host: alt.test}, upstream: alt}
  - {name: main, match: {host: gw.test}, upstream: main}
"""


def harness(server: str = "") -> Harness:
    return Harness(CONFIG % (", " + server if server else ""))


def feed(c: Peer, raw: bytes, how: str) -> None:
    if how == "bytewise":
        c.send_bytewise(raw)
    else:
        c.send(raw)


def refused(h: Harness, c: Peer, status: int, code: str) -> dict[str, str]:
    """The one answer on `c` is the gateway's error, the connection is closed, and no
    upstream connection was even attempted."""
    answers = c.responses()
    assert len(answers) == 1, answers
    doc = assert_gateway_error(answers[0], status, code)
    assert answers[0].header("connection") == "close"
    assert c.closed and c.transport.lost
    assert h.connector.attempts == [], "a refused request reached for an upstream"
    return doc


# --- refusals ------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["whole", "bytewise"])
@pytest.mark.parametrize("vector", REFUSED, ids=[v.name for v in REFUSED])
def test_refused(vector: Refusal, how: str) -> None:
    h = harness()
    c = h.client()
    feed(c, vector.raw, how)
    if not (vector.body and how == "bytewise"):
        refused(h, c, vector.status, vector.code)
        return
    # The head was valid and went upstream while the body came byte by byte (streamed, as
    # it arrived): when the body breaks, the upstream connection is aborted, so the origin
    # never gets a complete request, nor anything from the malformed part on.
    [answer] = c.responses()
    assert_gateway_error(answer, vector.status, vector.code)
    assert c.closed
    [up] = h.upstreams
    assert up.transport.aborted
    assert up.requests() == [], up.received
    body = vector.raw[vector.raw.find(b"\r\n\r\n") + 4:]
    bad = body[len(body.rstrip(b"0\r\n")) - 2:]  # the bytes from the malformation on
    assert bad not in up.received


def test_request_line_over_max_request_line_is_414() -> None:
    h = harness()
    c = h.client()
    c.send(b"GET /echo?" + b"a" * 5000 + b" HTTP/1.1\r\n" + H + b"\r\n")
    refused(h, c, 414, "uri_too_long")


def test_a_request_line_that_never_ends_is_414_before_it_ends() -> None:
    h = harness()
    c = h.client()
    c.send(b"GET /")
    for _ in range(50):
        c.send(b"a" * 100)
    refused(h, c, 414, "uri_too_long")


@pytest.mark.parametrize("pieces", [1, 40])
def test_head_over_max_header_bytes_is_431(pieces: int) -> None:
    h = harness()
    c = h.client()
    raw = (b"GET /echo HTTP/1.1\r\n" + H
           + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"v" * 1000) for i in range(20)) + b"\r\n")
    step = -(-len(raw) // pieces)
    for i in range(0, len(raw), step):
        c.send(raw[i:i + step])
    refused(h, c, 431, "header_too_large")


def test_a_head_that_never_ends_is_431_once_over_the_limit() -> None:
    """Bytes llhttp buffers for an incomplete head are bounded, not only complete fields."""
    h = harness()
    c = h.client()
    c.send(b"GET /echo HTTP/1.1\r\n" + H + b"X-Long: ")
    for _ in range(20):
        c.send(b"v" * 1000)
    refused(h, c, 431, "header_too_large")


def test_fields_up_to_max_headers_pass_and_one_more_is_431() -> None:
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(9))
    h = harness("max_headers: 10")
    c = h.client()
    c.send(b"GET /echo HTTP/1.1\r\n" + H + fields + b"\r\n")  # Host + 9 = 10 fields
    assert h.upstreams[0].requests()[0].header("x-f8") == ["v"]
    h = harness("max_headers: 10")
    c = h.client()
    c.send(b"GET /echo HTTP/1.1\r\n" + H + fields + b"X-F9: v\r\n\r\n")
    refused(h, c, 431, "header_too_large")


def test_bad_bytes_after_an_answered_request_are_refused_on_the_same_connection() -> None:
    h = harness()
    c = h.client()
    c.send(get("/one"))
    h.upstreams[0].send(ok(b"one"))
    assert c.response().body == b"one"
    c.send(b"GET /two HTTP/1.1\r\nHost: a/b\r\n\r\n")
    answers = c.responses()
    assert [a.status for a in answers] == [200, 400]
    assert c.closed
    assert len(h.upstreams[0].requests()) == 1


# --- headers with underscores --------------------------------------------------------------------
SMUGGLE = (b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
           b"Transfer_Encoding: chunked\r\nX_Tenant: a\r\n\r\nhello")


def test_underscore_names_are_dropped_by_default() -> None:
    h = harness()
    c = h.client()
    c.send(SMUGGLE)
    [req] = h.upstreams[0].requests()
    names = [n.lower() for n, _ in req.headers]
    assert "transfer_encoding" not in names and "x_tenant" not in names
    assert req.body == b"hello"
    assert h.state.underscore_headers == 2


def test_underscore_names_refused_with_reject() -> None:
    h = harness("headers_with_underscores: reject")
    c = h.client()
    c.send(SMUGGLE)
    refused(h, c, 400, "bad_request")
    assert h.state.underscore_headers == 1


def test_underscore_names_forwarded_with_allow() -> None:
    h = harness("headers_with_underscores: allow")
    c = h.client()
    c.send(SMUGGLE)
    [req] = h.upstreams[0].requests()
    assert req.header("transfer_encoding") == ["chunked"]
    assert req.header("x_tenant") == ["a"]
    assert req.body == b"hello"  # framed by Content-Length, as the gateway read it
    assert h.state.underscore_headers == 0


# --- path normalisation --------------------------------------------------------------------------
NOT_NORMAL = [
    ("//a", "/a"), ("/x/../a", "/a"), ("/%61", "/a"), ("/./a", "/a"), ("/a/./b/", "/a/b/"),
    ("/a//b?q=//x", "/a/b?q=//x"), ("/%7e%2f", "/~%2F"), ("/a/b/..", "/a/"),
]
PATHS_CONFIG = """\
server: {path_normalization: %s}
upstreams:
  admin: {targets: ["10.3.0.1:8080"]}
  main: {targets: ["10.1.0.1:8080"]}
routes:
  - {name: admin, match: {path_prefix: /a}, upstream: admin}
  - {name: main, match: {path_prefix: /}, upstream: main}
"""


@pytest.mark.parametrize(("sent", "normal"), NOT_NORMAL)
def test_path_normalize_routes_and_forwards_the_normal_form(sent: str, normal: str) -> None:
    h = Harness(PATHS_CONFIG % "normalize")
    c = h.client()
    c.send(get(sent))
    [up] = h.upstreams
    [req] = up.requests()
    assert req.target == normal
    assert h.connector.attempts == [
        ("10.3.0.1", 8080) if normal.startswith("/a") else ("10.1.0.1", 8080)]


@pytest.mark.parametrize(("sent", "normal"), NOT_NORMAL)
def test_path_reject_refuses_a_path_not_in_normal_form(sent: str, normal: str) -> None:
    h = Harness(PATHS_CONFIG % "reject")
    c = h.client()
    c.send(get(sent))
    refused(h, c, 400, "bad_request")


@pytest.mark.parametrize(("sent", "normal"), NOT_NORMAL)
def test_path_off_routes_and_forwards_as_sent(sent: str, normal: str) -> None:
    h = Harness(PATHS_CONFIG % "off")
    c = h.client()
    c.send(get(sent))
    [req] = h.upstreams[0].requests()
    assert req.target == sent


@pytest.mark.parametrize("policy", ["normalize", "reject", "off"])
@pytest.mark.parametrize("sent", ["/..", "/a/../..", "/%2E%2E/a", "/%zz", "/a%2", "/a%"])
def test_invalid_paths_are_refused_whatever_the_policy(policy: str, sent: str) -> None:
    h = Harness(PATHS_CONFIG % policy)
    c = h.client()
    c.send(get(sent))
    refused(h, c, 400, "bad_request")


@pytest.mark.parametrize("policy", ["normalize", "reject", "off"])
def test_a_normal_path_passes_under_every_policy(policy: str) -> None:
    h = Harness(PATHS_CONFIG % policy)
    c = h.client()
    c.send(get("/a/b.c~d?x=/../y"))
    [req] = h.upstreams[0].requests()
    assert req.target == "/a/b.c~d?x=/../y"


# --- targets and Host ----------------------------------------------------------------------------
def test_absolute_form_is_routed_by_its_authority_and_forwarded_in_origin_form() -> None:
    h = harness()
    c = h.client()
    c.send(b"GET http://alt.test/echo?x=1 HTTP/1.1\r\n" + H + b"\r\n")
    assert h.connector.attempts == [("10.2.0.1", 8080)]
    [req] = h.upstreams[0].requests()
    assert req.target == "/echo?x=1"
    assert req.header("host") == ["alt.test"]


@pytest.mark.parametrize(("target", "path"), [
    (b"http://alt.test/echo", "/echo"), (b"http://alt.test", "/"),
    (b"http://alt.test?x=1", "/?x=1"),
    (b"http://user@alt.test/echo", "/echo"), (b"HTTP://ALT.test:80/e", "/e"),
])
def test_absolute_form_without_query_or_path(target: bytes, path: str) -> None:
    h = harness()
    c = h.client()
    c.send(b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n")
    [req] = h.upstreams[0].requests()
    assert req.target == path


def test_options_star_is_accepted() -> None:
    h = Harness("""\
upstreams: {main: {targets: ["10.1.0.1:8080"]}}
routes: [{name: main, match: {host: gw.test}, upstream: main}]
""")
    c = h.client()
    c.send(b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n")
    [req] = h.upstreams[0].requests()
    assert (req.method, req.target) == ("OPTIONS", "*")


def test_host_of_253_characters_is_accepted() -> None:
    host = b".".join([b"a" * 63] * 3) + b"." + b"b" * 61
    assert len(host) == 253
    h = Harness()
    c = h.client()
    c.send(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert h.upstreams[0].requests()[0].header("host") == [host.decode()]


def test_connection_cannot_strip_host() -> None:
    """Connection-nominated fields are hop-by-hop, but Host never: the origin always gets it."""
    h = harness()
    c = h.client()
    c.send(b"GET /echo HTTP/1.1\r\n" + H + b"Connection: Host, X-Secret\r\nX-Secret: s\r\n"
           b"X-Kept: k\r\n\r\n")
    [req] = h.upstreams[0].requests()
    assert req.header("host") == ["gw.test"]
    assert req.header("x-secret") == [] and req.header("connection") == []
    assert req.header("x-kept") == ["k"]


@pytest.mark.parametrize("name", [b"X-Forwarded-For", b"X-Request-Id", b"X-Forwarded-Host"])
def test_connection_cannot_strip_what_the_gateway_sends(name: bytes) -> None:
    h = harness()
    c = h.client()
    c.send(b"GET /echo HTTP/1.1\r\n" + H + b"Connection: " + name + b"\r\n\r\n")
    [req] = h.upstreams[0].requests()
    assert len(req.header(name.decode())) == 1


# --- pipelining ----------------------------------------------------------------------------------
def test_pipelined_requests_are_forwarded_one_at_a_time_and_answered_in_order() -> None:
    h = harness()
    c = h.client()
    c.send(get("/1") + b"POST /2 HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc" + get("/3"))
    [up] = h.upstreams
    assert [r.target for r in up.requests()] == ["/1"]
    up.send(ok(b"one"))
    assert [r.target for r in up.requests()] == ["/1", "/2"]
    assert up.requests()[1].body == b"abc"
    up.send(ok(b"two"))
    up.send(ok(b"three"))
    assert [r.target for r in up.requests()] == ["/1", "/2", "/3"]
    assert [r.body for r in c.responses()] == [b"one", b"two", b"three"]
    assert len(h.upstreams) == 1  # the pooled connection carried all three
    assert not c.closed


def test_reading_pauses_at_max_pipelined_and_resumes_as_answers_go() -> None:
    h = harness("max_pipelined: 2")
    c = h.client()
    for i in range(5):
        c.send(get(f"/{i}"))
    # /0 is answered first; /1 and /2 wait: reading paused there, /3 and /4 are unread.
    assert c.transport.calls.count("pause_reading") == 1
    assert c.transport.waiting == [get("/3"), get("/4")]
    up = h.upstreams[0]
    up.send(ok(b"0"))
    assert c.transport.calls.count("resume_reading") == 1
    for i in range(1, 5):
        up.send(ok(str(i).encode()))
    assert [r.body for r in c.responses()] == [b"0", b"1", b"2", b"3", b"4"]
    assert [r.target for r in up.requests()] == ["/0", "/1", "/2", "/3", "/4"]


def test_a_queued_request_keeps_its_own_connection_semantics() -> None:
    h = harness()
    c = h.client()
    c.send(get("/1") + get("/2", extra=b"Connection: close\r\n") + get("/3"))
    up = h.upstreams[0]
    up.send(ok(b"1"))
    up.send(ok(b"2"))
    first, second = c.responses()
    assert first.header("connection") is None
    assert second.header("connection") == "close"
    assert c.closed
    assert [r.target for r in up.requests()] == ["/1", "/2"]


def test_bad_bytes_behind_queued_requests_are_refused_after_them() -> None:
    h = harness()
    c = h.client()
    c.send(get("/1") + get("/2") + b"GET /3 HTTP/1.1\r\n" + H
           + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n")
    up = h.upstreams[0]
    up.send(ok(b"1"))
    up.send(ok(b"2"))
    answers = c.responses()
    assert [a.status for a in answers] == [200, 200, 400]
    assert_gateway_error(answers[2], 400, "bad_request")
    assert c.closed
    assert [r.target for r in up.requests()] == ["/1", "/2"]


def test_client_gone_with_queued_requests_releases_everything() -> None:
    h = harness()
    c = h.client()
    c.send(get("/1") + get("/2") + get("/3"))
    up = h.upstreams[0]
    c.reset()
    assert up.transport.aborted
    cluster = h.cluster("main")
    assert cluster.active_requests == 0 and cluster.endpoints[0].active == 0
    assert [ex.error_code for ex in h.done] == ["client_closed"]
    assert [r.target for r in up.requests()] == ["/1"]


# --- the relay of heads as received --------------------------------------------------------------
CANONICAL = (b"GET /items?id=7 HTTP/1.1\r\nHost: gw.test\r\nUser-Agent: t/1\r\n"
             b"Accept: */*\r\nX-Request-Id: rid-1\r\n\r\n")


def _without_id(raw: bytes) -> bytes:
    return raw.replace(b"X-Request-Id: rid-1\r\n", b"")


def test_a_canonical_head_in_one_read_is_relayed_byte_for_byte() -> None:
    raw = b"GET /items?id=7 HTTP/1.1\r\nHost: gw.test\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n"
    h = harness()
    c = h.client()
    c.send(raw)
    sent = h.upstreams[0].received
    assert sent.startswith(raw[:-2])
    added = sent[len(raw) - 2:].split(b"\r\n")
    assert [line.split(b":")[0] for line in added if line] == [
        b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id"]


@pytest.mark.parametrize("variant", [b"Host:gw.test\r\n", b"Host:  gw.test\r\n"])
def test_a_head_not_written_canonically_is_rewritten(variant: bytes) -> None:
    h = harness()
    c = h.client()
    c.send(b"GET /items HTTP/1.1\r\n" + variant + b"Accept: */*\r\n\r\n")
    sent = h.upstreams[0].received
    assert sent.startswith(b"GET /items HTTP/1.1\r\nHost: gw.test\r\nAccept: */*\r\n")


@pytest.mark.parametrize("variant", [b"Host:\tgw.test\r\n", b"Host: gw.test \r\n"])
def test_a_head_differing_only_in_whitespace_the_same_length_is_relayed(variant: bytes) -> None:
    """One tab for the space, or trailing whitespace (part of the value llhttp reports):
    the same field values for any reader, so the head is relayed as received."""
    h = harness()
    c = h.client()
    c.send(b"GET /items HTTP/1.1\r\n" + variant + b"Accept: */*\r\n\r\n")
    sent = h.upstreams[0].received
    assert sent.startswith(b"GET /items HTTP/1.1\r\n" + variant + b"Accept: */*\r\n")
    assert h.connector.attempts == [("10.1.0.1", 8080)]  # routed by the host, OWS stripped


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(CANONICAL) - 1), unique=True,
                max_size=12))
def test_how_a_head_is_split_into_reads_changes_nothing_upstream(cuts: list[int]) -> None:
    """Relayed as received (one read) or written from its fields (several): the same bytes."""
    whole = harness()
    whole.client().send(CANONICAL)
    h = harness()
    c = h.client()
    edges = [0, *sorted(cuts), len(CANONICAL)]
    for a, b in zip(edges, edges[1:], strict=False):
        c.send(CANONICAL[a:b])
    assert h.upstreams[0].received == whole.upstreams[0].received


def test_a_canonical_response_head_is_relayed_byte_for_byte() -> None:
    head = (b"HTTP/1.1 201 Created\r\nServer: o\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 2\r\nX-Seven: 7\r\n")
    h = harness()
    c = h.client()
    c.send(get("/", extra=b"X-Request-Id: rid-9\r\n"))
    h.upstreams[0].send(head + b"\r\nok")
    assert c.received == head + b"x-request-id: rid-9\r\n\r\nok"


# --- bodies, trailers, versions ------------------------------------------------------------------
def test_chunked_request_body_and_trailers_are_forwarded() -> None:
    h = harness()
    c = h.client()
    c.send(b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trail: t1\r\nX-Sum: 42\r\n\r\n")
    [req] = h.upstreams[0].requests()
    assert req.body == b"hello world"
    assert req.trailers == [("X-Trail", "t1"), ("X-Sum", "42")]


@pytest.mark.parametrize("how", ["whole", "bytewise"])
def test_chunked_response_trailers_reach_the_client(how: str) -> None:
    h = harness()
    c = h.client()
    c.send(get("/"))
    resp = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"6\r\nalpha-\r\n5\r\nbeta-\r\n0\r\nx-checksum: abc\r\nx-count: 2\r\n\r\n")
    feed(h.upstreams[0], resp, how)
    answer = c.response()
    assert answer.header("transfer-encoding") == "chunked"
    assert answer.body == b"alpha-beta-"
    assert answer.trailers == [("x-checksum", "abc"), ("x-count", "2")]


def test_http10_client_gets_a_streamed_body_close_delimited() -> None:
    h = harness()
    c = h.client()
    c.send(b"GET / HTTP/1.0\r\n" + H + b"Connection: keep-alive\r\n\r\n")
    h.upstreams[0].send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                        b"3\r\nabc\r\n0\r\n\r\n")
    assert c.closed
    answer = c.response()
    assert answer.header("transfer-encoding") is None and answer.header("connection") == "close"
    assert answer.body == b"abc"


def test_http10_keep_alive_is_kept_and_said() -> None:
    h = harness()
    c = h.client()
    for i in range(2):
        c.send(b"GET /%d HTTP/1.0\r\n" % i + H + b"Connection: keep-alive\r\n\r\n")
        h.upstreams[0].send(ok())
        assert c.response().header("connection") == "keep-alive"
    assert not c.closed


def test_http10_without_keep_alive_closes_after_the_response() -> None:
    h = harness()
    c = h.client()
    c.send(b"GET / HTTP/1.0\r\n" + H + b"\r\n")
    h.upstreams[0].send(ok())
    assert c.response().status == 200
    assert c.closed


def test_expect_100_continue_is_answered_then_the_body_flows() -> None:
    h = harness()
    c = h.client()
    c.send(b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert c.received == b"HTTP/1.1 100 Continue\r\n\r\n"
    c.send(b"hello")
    up = h.upstreams[0]
    [req] = up.requests()
    assert req.body == b"hello" and req.header("expect") == []
    up.send(ok())
    assert c.response().status == 200


def test_head_response_has_no_body_and_the_connection_goes_on() -> None:
    h = harness()
    c = h.client()
    c.send(b"HEAD /big HTTP/1.1\r\n" + H + b"\r\n")
    up = h.upstreams[0]
    up.send(b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n")
    answer = c.response(head_request=True)
    assert answer.header("content-length") == "5000"
    c.send(get("/after"))
    up.send(ok(b"after"))
    assert c.response().body == b"after"
    assert len(h.upstreams) == 1


# --- deadlines -----------------------------------------------------------------------------------
def test_an_incomplete_head_is_408_at_header_timeout() -> None:
    h = harness()
    c = h.client()
    c.send(b"GET /echo HTTP/1.1\r\n" + H)
    h.advance(0.99)
    assert c.received == b"" and not c.closed
    h.advance(0.02)
    refused(h, c, 408, "request_timeout")


def test_a_trickled_head_does_not_extend_header_timeout() -> None:
    h = harness()
    c = h.client()
    for byte in b"GET /echo HTTP/1.1\r\n":
        c.send(bytes([byte]))
        h.advance(0.04)  # 20 bytes, 0.8 s
    assert not c.closed
    h.advance(0.25)
    refused(h, c, 408, "request_timeout")


def test_a_silent_connection_is_closed_at_header_timeout_without_an_answer() -> None:
    h = harness()
    c = h.client()
    h.advance(0.99)
    assert not c.closed
    h.advance(0.02)
    assert c.closed and c.received == b""


def test_an_idle_keep_alive_connection_closes_at_idle_timeout() -> None:
    h = harness()
    c = h.client()
    c.send(get())
    h.upstreams[0].send(ok())
    h.advance(4.9)
    assert not c.closed
    c.send(get())  # a second request restarts the wait
    h.upstreams[0].send(ok())
    h.advance(4.9)
    assert not c.closed
    h.advance(0.2)
    assert c.closed
    assert [r.status for r in c.responses()] == [200, 200]


def test_an_answer_in_progress_is_not_cut_by_idle_or_header_timeouts() -> None:
    h = Harness(CONFIG.replace("main: {targets", "main: {response_header_timeout: 60s, targets")
                % "")
    c = h.client()
    c.send(get())
    h.advance(30)
    assert not c.closed
    h.upstreams[0].send(ok())
    assert c.response().status == 200


# --- flow control --------------------------------------------------------------------------------
def test_a_client_that_stops_reading_pauses_the_upstream() -> None:
    h = harness()
    c = h.client()
    c.send(get())
    up = h.upstreams[0]
    up.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
    c.fill()
    assert up.transport.calls[-1] == "pause_reading"
    c.drain()
    assert up.transport.calls[-1] == "resume_reading"
    up.send(b"defghij")
    assert c.response().body == b"abcdefghij"


def test_an_upstream_that_stops_reading_pauses_the_client() -> None:
    h = harness()
    c = h.client()
    c.send(b"POST /up HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\nabc")
    up = h.upstreams[0]
    up.fill()
    assert c.transport.calls[-1] == "pause_reading"
    c.send(b"def")  # in flight before the pause took effect: waits in the kernel
    assert up.requests() == []
    up.drain()
    assert c.transport.calls[-1] == "resume_reading"
    c.send(b"ghij")
    assert up.requests()[0].body == b"abcdefghij"


def test_body_waiting_for_a_connection_is_bounded() -> None:
    h = harness()
    h.connector.plan.append("hang")
    c = h.client()
    c.send(b"POST /up HTTP/1.1\r\n" + H + b"Content-Length: 200000\r\n\r\n")
    c.send(b"x" * 60000)
    assert "pause_reading" not in c.transport.calls
    c.send(b"x" * 10000)
    assert c.transport.calls[-1] == "pause_reading"
    c.send(b"x" * 130000)  # waits unread
    connecting = h.connector.hanging[0]
    connecting.set_result(None)
    h.run()
    assert c.transport.calls[-1] == "resume_reading"
    h.upstreams[0].send(ok())
    [req] = h.upstreams[0].requests()
    assert req.body == b"x" * 200000
    assert c.response().status == 200


# --- draining ------------------------------------------------------------------------------------
def test_a_draining_listener_answers_with_close_then_closes() -> None:
    h = harness()
    c = h.client()
    c.send(get())
    h.state.draining = True
    h.upstreams[0].send(ok())
    answer = c.response()
    assert answer.status == 200
    assert c.closed


def test_close_if_idle_closes_an_idle_connection_and_waits_for_a_busy_one() -> None:
    h = harness()
    idle, busy = h.client(), h.client(("10.0.0.2", 1))
    busy.send(get())
    assert idle.protocol.close_if_idle() is True
    assert busy.protocol.close_if_idle() is False
    h.run()
    assert idle.closed and not busy.closed
    h.upstreams[0].send(ok())
    assert busy.response().status == 200
    assert busy.closed


def test_a_head_begun_behind_an_answered_request_gets_header_timeout_not_idle_timeout() -> None:
    """A partial head read while the request before it was answered: once that answer is
    done, the head has header_timeout to complete, not the idle timeout of a silent
    keep-alive connection (else a trickled head outlives the slowloris bound)."""
    h = harness()
    c = h.client()
    c.send(get("/1") + b"GET /2 HTTP/1.1\r\n")
    h.upstreams[0].send(ok())
    h.advance(0.99)
    assert [r.status for r in c.responses()] == [200]
    h.advance(0.02)
    answers = c.responses()
    assert [r.status for r in answers] == [200, 408]
    assert_gateway_error(answers[1], 408, "request_timeout")
    assert c.closed


def test_trailers_that_frame_route_or_authenticate_are_dropped_both_ways() -> None:
    """RFC 9110 §6.5.1: a peer that merges trailers into the header section must never read
    a framing, routing or credential field the gateway did not check. (A Content-Length
    trailer is refused by the parser itself: 400.)"""
    h = harness()
    c = h.client()
    c.send(b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n0\r\nHost: evil.test\r\nAuthorization: x\r\n"
           b"X-Forwarded-For: 1.2.3.4\r\nX_Sum: 1\r\nX-Sum: 42\r\n\r\n")
    up = h.upstreams[0]
    [req] = up.requests()
    assert (req.body, req.trailers) == (b"hello", [("X-Sum", "42")])
    up.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"2\r\nok\r\n0\r\nSet-Cookie: s=1\r\nTransfer-Encoding: chunked\r\nx-count: 2\r\n\r\n")
    answer = c.response()
    assert (answer.body, answer.trailers) == (b"ok", [("x-count", "2")])
