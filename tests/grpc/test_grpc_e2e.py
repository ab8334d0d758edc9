"""gRPC through a real gateway to a real grpcio server: from HTTP/1.1 clients (plain gRPC over
HTTP/1.1 to an h2 upstream; gRPC-Web, binary and text, for the four call kinds with trailers
intact), and from grpcio clients over HTTP/2 (four call kinds, cancellation, many concurrent
streams); deadlines, large messages, the gateway's own errors as gRPC statuses, retries on gRPC
statuses, the gRPC health check and the grpc-status metric. One origin and one gateway."""

from __future__ import annotations

import base64
import json
import queue
from collections.abc import Iterator

import grpc
import pytest
from tests.observability.obskit import AdminGateway, value, wait_until

from support.grpc_origin import GrpcOrigin
from support.grpc_web import GRPC, WEB, WEB_TEXT, call, frame, unframe
from support.rawhttp import exchange, get

CONFIG = """
listen: {listen}
admin: {admin}
upstreams:
  echo:
    targets: [%(origin)s]
    protocol: h2
    panic_threshold: 0
    health: {kind: grpc, interval: 200ms, timeout: 200ms, unhealthy_after: 1, healthy_after: 1}
  dead:
    targets: [127.0.0.1:1]
    protocol: h2
routes:
  - name: echo
    match: {grpc: {service: test.Echo}}
    upstream: echo
    filters: [{grpc_web: {}}]
    retries: {attempts: 3, on: [connect_failure], grpc_on: [unavailable]}
  - name: limited
    match: {grpc: {service: test.Limited, method: Unary}}
    upstream: echo
    rate_limit: {rate: 1/m, burst: 1, key: client_ip}
  - name: denied
    match: {grpc: {service: test.Denied}}
    upstream: echo
    filters: [{ip: {deny: [127.0.0.1/32]}}]
  - name: dead
    match: {grpc: {service: test.Dead}}
    upstream: dead
    filters: [{grpc_web: {}}]
"""


@pytest.fixture(scope="module")
def origin() -> Iterator[GrpcOrigin]:
    with GrpcOrigin() as o:
        yield o


@pytest.fixture(scope="module")
def gw(origin: GrpcOrigin) -> Iterator[AdminGateway]:
    with AdminGateway(CONFIG % {"origin": origin.address}) as g:
        yield g


def test_grpc_over_http11_reaches_an_h2_upstream_with_its_trailers(gw: AdminGateway) -> None:
    answer = call(gw.port, "/test.Echo/Unary", [b"hello"], content_type=GRPC)
    assert answer.http_status == 200
    assert answer.messages == [b"hello"]
    assert answer.trailers.get("grpc-status") == "0"  # HTTP/1.1 chunked trailers


@pytest.mark.parametrize("content_type", [WEB, WEB_TEXT])
def test_grpc_web_unary(gw: AdminGateway, content_type: str) -> None:
    answer = call(gw.port, "/test.Echo/Unary", [b"hi there"], content_type=content_type,
                  headers=[("Origin", "https://app.test")])
    assert answer.http_status == 200
    assert answer.header("content-type") == content_type
    assert answer.messages == [b"hi there"]
    assert answer.trailers == {"grpc-status": "0", "grpc-message": ""}
    assert answer.trailer_frames == 1
    assert "grpc-status" in (answer.header("access-control-expose-headers") or "")


@pytest.mark.parametrize("content_type", [WEB, WEB_TEXT])
def test_grpc_web_server_streaming(gw: AdminGateway, content_type: str) -> None:
    answer = call(gw.port, "/test.Echo/Stream", [b"20:65536"], content_type=content_type)
    assert answer.status == "0"
    assert [len(m) for m in answer.messages] == [65536] * 20
    assert answer.messages[1] == b"B" * 65536


def test_grpc_web_client_streaming(gw: AdminGateway) -> None:
    parts = [b"one,", b"two,", b"three"]
    answer = call(gw.port, "/test.Echo/Collect", parts, chunked=True)
    assert answer.status == "0"
    assert answer.messages == [b"one,two,three"]


def test_grpc_web_bidi(gw: AdminGateway) -> None:
    answer = call(gw.port, "/test.Echo/Chat", [b"a", b"bc", b"def"], content_type=WEB_TEXT,
                  chunked=True)
    assert answer.status == "0"
    assert answer.messages == [b"A", b"BC", b"DEF"]


def test_text_mode_accepts_one_base64_body_for_several_messages(gw: AdminGateway) -> None:
    # Most clients encode each message on its own; one encoding of the whole body is valid too.
    body = base64.b64encode(frame(b"x") + frame(b"yz"))
    raw = (b"POST /test.Echo/Chat HTTP/1.1\r\nHost: gw.test\r\n"
           b"Content-Type: application/grpc-web-text\r\nContent-Length: %d\r\n\r\n%b"
           % (len(body), body))
    resp = exchange(gw.port, raw)
    assert resp.header("content-type") == "application/grpc-web-text+proto"
    messages, trailers = unframe(base64.b64decode(resp.body))
    assert messages == [b"X", b"YZ"]
    assert trailers["grpc-status"] == "0"


def test_large_messages_both_ways(gw: AdminGateway) -> None:
    big = bytes(range(256)) * (3 * 1024 * 1024 // 256)  # 3 MiB: past every window
    answer = call(gw.port, "/test.Echo/Unary", [big])
    assert answer.status == "0"
    assert answer.messages == [big]


def test_upstream_status_and_message_reach_the_client(gw: AdminGateway) -> None:
    answer = call(gw.port, "/test.Echo/Unary", [b"status:5:no such thing"])
    assert answer.status == "5"
    assert answer.message == "no such thing"
    assert answer.messages == []


def test_grpc_timeout_is_the_deadline(gw: AdminGateway) -> None:
    answer = call(gw.port, "/test.Echo/Unary", [b"sleep:3"],
                  headers=[("grpc-timeout", "300m")])
    assert answer.status == "4"  # DEADLINE_EXCEEDED (the gateway's or the service's own)


def test_grpc_timeout_is_propagated_reduced(gw: AdminGateway) -> None:
    answer = call(gw.port, "/test.Echo/Unary", [b"meta"], headers=[("grpc-timeout", "5S")])
    assert answer.status == "0"
    seen = dict(line.split("=", 1) for line in answer.messages[0].decode().split("\n"))
    assert 0 < float(seen["deadline"]) <= 5.0  # the service got a deadline: the call's


def test_unavailable_is_retried(gw: AdminGateway, origin: GrpcOrigin) -> None:
    before = origin.calls["Unary"]
    answer = call(gw.port, "/test.Echo/Unary", [b"status:14:try later"])
    assert answer.status == "14"
    assert origin.calls["Unary"] - before == 3  # retries.attempts


def test_other_statuses_are_not_retried(gw: AdminGateway, origin: GrpcOrigin) -> None:
    before = origin.calls["Unary"]
    assert call(gw.port, "/test.Echo/Unary", [b"status:3:bad"]).status == "3"
    assert origin.calls["Unary"] - before == 1


def test_no_route_is_unimplemented(gw: AdminGateway) -> None:
    answer = call(gw.port, "/test.Nobody/Call", [b"x"])
    assert answer.http_status == 200
    assert answer.status == "12"
    assert answer.message.startswith("route_not_found: ")
    assert answer.header("content-type") == WEB


def test_rate_limit_is_resource_exhausted(gw: AdminGateway) -> None:
    first = call(gw.port, "/test.Limited/Unary", [b"x"], content_type=GRPC)
    assert first.status == "12"  # through to the service, which has no test.Limited
    second = call(gw.port, "/test.Limited/Unary", [b"x"], content_type=GRPC)
    assert second.http_status == 200
    assert second.status == "8"
    assert second.message.startswith("rate_limited: ")
    assert second.header("retry-after") is not None


def test_ip_refusal_is_permission_denied(gw: AdminGateway) -> None:
    answer = call(gw.port, "/test.Denied/Unary", [b"x"], content_type=GRPC)
    assert answer.status == "7"
    assert answer.message.startswith("ip_denied: ")


def test_unreachable_upstream_is_unavailable(gw: AdminGateway) -> None:
    answer = call(gw.port, "/test.Dead/Unary", [b"x"], content_type=WEB_TEXT)
    assert answer.http_status == 200
    assert answer.status == "14"
    assert answer.message.startswith("upstream_connect_failed: ")
    assert answer.header("content-type") == WEB_TEXT


def test_non_grpc_requests_do_not_match_grpc_routes(gw: AdminGateway) -> None:
    resp = get(gw.port, "/test.Echo/Unary", method="POST", body=b"x")
    assert resp.status == 404
    assert resp.json()["code"] == "route_not_found"


def test_grpc_status_metric(gw: AdminGateway) -> None:
    call(gw.port, "/test.Echo/Unary", [b"status:9:precondition"])
    samples = gw.scrape()
    assert value(samples, "edgeward_grpc_responses_total", route="echo", grpc_status="9") >= 1
    assert value(samples, "edgeward_grpc_responses_total", route="echo", grpc_status="0") >= 1


def test_grpc_health_check_follows_the_service(gw: AdminGateway, origin: GrpcOrigin) -> None:
    def healthy() -> bool | None:
        ups = json.loads(gw.admin("GET", "/upstreams").body)
        echo = next(u for u in ups if u["name"] == "echo")
        return echo["endpoints"][0]["healthy"]

    assert wait_until(lambda: origin.calls["Check"] > 0, what="a health check")
    origin.serving = False
    try:
        wait_until(lambda: healthy() is False, what="NOT_SERVING seen")
        answer = call(gw.port, "/test.Echo/Unary", [b"x"])
        assert answer.status == "14"  # no healthy upstream
    finally:
        origin.serving = True
    wait_until(lambda: healthy() is True, what="SERVING again")


# --- grpcio clients over HTTP/2 (h2c prior knowledge) to the gateway ---------------------------

@pytest.fixture(scope="module")
def channel(gw: AdminGateway) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
        yield ch


def test_grpcio_unary(channel: grpc.Channel) -> None:
    call_ = channel.unary_unary("/test.Echo/Unary")
    reply, state = call_.with_call(b"ping", timeout=10)
    assert reply == b"ping"
    assert state.code() == grpc.StatusCode.OK


def test_grpcio_server_streaming(channel: grpc.Channel) -> None:
    replies = list(channel.unary_stream("/test.Echo/Stream")(b"100:1000", timeout=10))
    assert len(replies) == 100
    assert replies[27] == b"B" * 1000


def test_grpcio_client_streaming(channel: grpc.Channel) -> None:
    reply = channel.stream_unary("/test.Echo/Collect")(iter([b"a", b"b" * 70000, b"c"]),
                                                       timeout=10)
    assert reply == b"a" + b"b" * 70000 + b"c"


def test_grpcio_bidi_interleaves(channel: grpc.Channel) -> None:
    outbox: queue.Queue[bytes | None] = queue.Queue()

    def requests() -> Iterator[bytes]:
        while (item := outbox.get(timeout=10)) is not None:
            yield item

    responses = channel.stream_stream("/test.Echo/Chat")(requests(), timeout=10)
    for word in (b"one", b"two", b"three"):
        outbox.put(word)
        assert next(responses) == word.upper()  # answered before the next is sent
    outbox.put(None)
    assert list(responses) == []


def test_grpcio_deadline(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as err:
        channel.unary_unary("/test.Echo/Unary")(b"sleep:3", timeout=0.3)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_grpcio_cancellation_reaches_the_service(channel: grpc.Channel,
                                                 origin: GrpcOrigin) -> None:
    before = origin.cancelled
    responses = channel.unary_stream("/test.Echo/Stream")(b"100000:16384", timeout=20)
    assert len(next(responses)) == 16384
    responses.cancel()
    wait_until(lambda: origin.cancelled > before, what="the service saw the cancellation")


def test_grpcio_many_concurrent_streams(channel: grpc.Channel) -> None:
    unary = channel.unary_unary("/test.Echo/Unary")
    futures = [unary.future(b"n%d" % i, timeout=20) for i in range(300)]
    assert [f.result() for f in futures] == [b"n%d" % i for i in range(300)]


def test_grpcio_sees_the_gateway_s_statuses(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as err:
        channel.unary_unary("/test.Nobody/Call")(b"x", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert err.value.details().startswith("route_not_found: ")
    with pytest.raises(grpc.RpcError) as err:
        channel.unary_unary("/test.Dead/Call")(b"x", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    limited = channel.unary_unary("/test.Limited/Unary")
    codes = set()
    for _ in range(2):
        with pytest.raises(grpc.RpcError) as err:
            limited(b"x", timeout=10)
        codes.add(err.value.code())
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
