"""The exchange without sockets: its state table, retries, deadlines and filter chain, driven
through the real listener and upstream codec on fake transports and a fake clock
(tests/support/fakes.py). Time moves only when a test advances it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.proxy import states
from edgeward.resilience.outcome import Outcome
from support import filters
from support.fakes import Harness, Peer, get, ok
from support.vectors import assert_gateway_error

CONFIG = """\
server: {body_timeout: 2s}
upstreams:
  app: {targets: ["10.1.0.1:8080"], connect_timeout: 1s, response_header_timeout: 3s,
        circuit_breaker: {min_requests: 100}}
routes:
  - name: retry
    match: {host: retry.test}
    upstream: app
    retries: {attempts: 3, on: [503, reset, connect_failure, timeout],
              backoff: {base: 100ms, max: 400ms}}
  - {name: timed, match: {host: timed.test}, upstream: app, timeout: 1s}
  - {name: main, match: {path_prefix: /}, upstream: app, timeout: null}
"""


class Attempts:
    """What the cluster recorded (breaker, outlier detection, balancer): one entry per try."""

    def __init__(self, h: Harness) -> None:
        self.outcomes: list[Outcome] = []
        h.cluster().on_attempt = self.record

    def record(self, cluster: Any, endpoint: Any, outcome: Outcome, duration: float) -> None:
        self.outcomes.append(outcome)

    def statuses(self) -> list[int | str | None]:
        return [o.status if o.error is None else o.error for o in self.outcomes]


def one_request(h: Harness, raw: bytes) -> Peer:
    c = h.client()
    c.send(raw)
    return c


def post(host: str, body: bytes, length: int | None = None) -> bytes:
    return (b"POST /upload HTTP/1.1\r\nHost: %b\r\nContent-Length: %d\r\n\r\n%b"
            % (host.encode(), len(body) if length is None else length, body))


def released(h: Harness) -> None:
    """Everything an exchange holds was given back."""
    cluster = h.cluster()
    assert cluster.active_requests == 0 and cluster.active_retries == 0
    assert all(e.active == 0 for e in cluster.endpoints)
    for ex in h.done:
        assert ex.state == states.DONE


# --- the table -----------------------------------------------------------------------------------
def test_the_table_and_its_bit_form_agree() -> None:
    for old in range(len(states.NAMES)):
        for new in range(len(states.NAMES)):
            allowed = new in states.TRANSITIONS[old]
            assert bool((states.ALLOWED_BITS >> (old * 8 + new)) & 1) == allowed
            if allowed:
                states.check(old, new)
            else:
                with pytest.raises(states.TransitionError, match=states.NAMES[new]):
                    states.check(old, new)


def test_a_proxied_request_goes_head_filtering_connecting_waiting_streaming_done() -> None:
    h = Harness(CONFIG)
    c = one_request(h, get("/"))
    ex = c.protocol.current
    assert ex.state == states.WAITING  # connected at once, request sent
    up = h.upstreams[0]
    up.send(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nab")
    assert ex.state == states.STREAMING
    up.send(b"cd")
    assert ex.state == states.DONE and h.done == [ex]
    assert c.response().body == b"abcd"
    released(h)


# --- retries -------------------------------------------------------------------------------------
def test_a_503_is_retried_after_its_backoff_on_a_new_connection() -> None:
    h = Harness(CONFIG)
    attempts = Attempts(h)
    c = one_request(h, get("/", host="retry.test"))
    h.upstreams[0].send(b"HTTP/1.1 503 X\r\ncontent-length: 0\r\n\r\n")
    ex = c.protocol.current
    assert ex.state == states.BACKOFF
    assert h.upstreams[0].transport.aborted and len(h.upstreams) == 1
    [when] = h.loop.pending_timers()[:1]
    assert 0 <= when - h.loop.now <= 0.1  # first retry: uniform in [0, base]
    h.advance(0.1)
    assert len(h.upstreams) == 2 and ex.state == states.WAITING
    h.upstreams[1].send(b"HTTP/1.1 503 X\r\ncontent-length: 0\r\n\r\n")
    assert ex.state == states.BACKOFF
    h.advance(0.2)  # second retry: up to 2 x base
    h.upstreams[2].send(ok(b"third"))
    assert c.response().body == b"third"
    assert attempts.statuses() == [503, 503, 200]
    assert h.cluster().retries == 2
    released(h)


def test_the_last_try_answers_when_the_retries_run_out() -> None:
    h = Harness(CONFIG)
    c = one_request(h, get("/", host="retry.test"))
    for i in range(3):
        h.upstreams[i].send(b"HTTP/1.1 503 X\r\ncontent-length: 4\r\n\r\nbusy")
        h.advance(0.4)
    assert len(h.upstreams) == 3
    resp = c.response()
    assert (resp.status, resp.body) == (503, b"busy")
    released(h)


def test_connect_failures_are_retried_then_502() -> None:
    h = Harness(CONFIG)
    attempts = Attempts(h)
    h.connector.default = "refuse"
    c = one_request(h, get("/", host="retry.test"))
    h.advance(1)
    assert len(h.connector.attempts) == 3
    assert_gateway_error(c.response(), 502, "upstream_connect_failed")
    assert attempts.statuses() == ["connect_failure"] * 3
    released(h)


def test_a_post_is_not_retried_after_it_reached_the_upstream() -> None:
    h = Harness(CONFIG)
    c = one_request(h, post("retry.test", b"body"))
    h.upstreams[0].send(b"HTTP/1.1 503 X\r\ncontent-length: 0\r\n\r\n")
    assert c.response().status == 503
    assert len(h.upstreams) == 1


def test_a_client_gone_during_backoff_cancels_the_retry() -> None:
    h = Harness(CONFIG)
    c = one_request(h, get("/", host="retry.test"))
    h.upstreams[0].send(b"HTTP/1.1 503 X\r\ncontent-length: 0\r\n\r\n")
    c.reset()
    h.advance(1)
    assert len(h.connector.attempts) == 1
    assert h.last().error_code == "client_closed"
    released(h)


# --- the keep-alive race -------------------------------------------------------------------------
def test_a_pooled_connection_closed_under_a_get_is_resent_once_on_a_new_one() -> None:
    h = Harness(CONFIG)
    attempts = Attempts(h)
    dying = h.pooled()
    c = one_request(h, get("/race"))
    assert [r.target for r in dying.requests()] == ["/race"]
    dying.close()  # closed without a byte of answer
    assert len(h.upstreams) == 1
    h.upstreams[0].send(ok(b"fresh"))
    assert c.response().body == b"fresh"
    assert [r.target for r in h.upstreams[0].requests()] == ["/race"]
    assert attempts.statuses() == [200]  # the race is nobody's failure
    released(h)


def test_the_race_is_resent_once_only() -> None:
    h = Harness(CONFIG)
    dying = h.pooled()
    c = one_request(h, get("/race"))
    dying.close()
    h.upstreams[0].close()
    assert_gateway_error(c.response(), 502, "upstream_reset")
    assert len(h.upstreams) == 1


def test_a_post_is_not_resent_in_the_race() -> None:
    h = Harness(CONFIG)
    dying = h.pooled()
    c = one_request(h, post("gw.test", b"body"))
    dying.close()
    assert_gateway_error(c.response(), 502, "upstream_reset")
    assert h.connector.attempts == []


def test_a_connection_that_answered_part_is_not_resent() -> None:
    h = Harness(CONFIG)
    dying = h.pooled()
    c = one_request(h, get("/race"))
    dying.send(b"HTTP/1.1 200 OK\r\n")
    dying.close()
    assert_gateway_error(c.response(), 502, "upstream_reset")
    assert h.connector.attempts == []


def test_a_body_beyond_the_replay_limit_is_not_resent() -> None:
    h = Harness(CONFIG.replace("server: {", "server: {replay_limit: 4, "))
    dying = h.pooled()
    c = one_request(h, b"PUT /x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n\r\nhello")
    dying.close()
    assert_gateway_error(c.response(), 502, "upstream_reset")
    assert h.connector.attempts == []


def test_a_body_within_the_replay_limit_is_resent_whole() -> None:
    h = Harness(CONFIG)
    dying = h.pooled()
    c = one_request(h, b"PUT /x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n\r\n")
    c.send(b"hel")
    c.send(b"lo")
    dying.close()
    [req] = h.upstreams[0].requests()
    assert req.body == b"hello"
    h.upstreams[0].send(ok())
    assert c.response().status == 200


# --- deadlines -----------------------------------------------------------------------------------
def test_connect_timeout_is_502_and_a_connect_failure() -> None:
    h = Harness(CONFIG)
    attempts = Attempts(h)
    h.connector.plan.append("hang")
    c = one_request(h, get("/"))
    h.advance(0.99)
    assert c.received == b""
    h.advance(0.02)
    assert_gateway_error(c.response(), 502, "upstream_connect_failed")
    assert h.connector.hanging[0].cancelled()
    assert attempts.statuses() == ["connect_failure"]
    released(h)


def test_response_header_timeout_is_504_and_a_timeout() -> None:
    h = Harness(CONFIG)
    attempts = Attempts(h)
    c = one_request(h, get("/"))
    h.advance(2.99)
    assert c.received == b""
    h.advance(0.02)
    assert_gateway_error(c.response(), 504, "upstream_timeout")
    assert h.upstreams[0].transport.aborted
    assert attempts.statuses() == ["timeout"]
    released(h)


def test_response_header_timeout_counts_from_the_end_of_the_request() -> None:
    h = Harness(CONFIG)
    c = one_request(h, post("gw.test", b"a", length=4))
    for part in (b"b", b"c", b"d"):
        h.advance(1.5)  # within body_timeout; 4.5 s in all, more than the 3 s header wait
        c.send(part)
    h.advance(2.9)
    assert c.received == b""
    h.upstreams[0].send(ok())
    assert c.response().status == 200


def test_route_timeout_runs_from_the_end_of_the_request() -> None:
    h = Harness(CONFIG)
    c = one_request(h, post("timed.test", b"a", length=3))
    h.advance(1.5)
    c.send(b"b")
    h.advance(1.5)  # 3 s of upload: longer than the route's 1 s timeout, not cut
    c.send(b"c")
    h.advance(0.99)
    assert c.received == b""
    h.advance(0.02)
    assert_gateway_error(c.response(), 504, "upstream_timeout")


def test_route_timeout_bounds_a_response_that_streams_too_long() -> None:
    h = Harness(CONFIG)
    c = one_request(h, get("/", host="timed.test"))
    up = h.upstreams[0]
    up.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
    h.advance(1.01)
    assert c.transport.aborted  # the head went out: the stream is reset
    assert up.transport.aborted
    assert h.last().error_code == "upstream_timeout"


def test_a_stalled_request_body_is_408_and_nothing_is_held_against_the_endpoint() -> None:
    h = Harness(CONFIG)
    attempts = Attempts(h)
    breaker = h.cluster().breaker
    assert breaker is not None
    c = one_request(h, post("gw.test", b"abc", length=10))
    up = h.upstreams[0]
    h.advance(1.99)
    assert c.received == b""
    h.advance(0.02)
    assert_gateway_error(c.response(), 408, "request_timeout")
    assert c.closed and up.transport.aborted
    assert attempts.outcomes == []  # breaker, outlier detection, balancer: nothing
    assert breaker.stats(h.loop.now).calls == 0
    released(h)


def test_an_upstream_that_stops_reading_the_body_is_504_and_held_against_nobody() -> None:
    h = Harness(CONFIG)
    attempts = Attempts(h)
    c = one_request(h, post("gw.test", b"abc", length=10))
    up = h.upstreams[0]
    up.fill()
    assert c.transport.calls[-1] == "pause_reading"
    h.advance(2.01)
    assert_gateway_error(c.response(), 504, "upstream_timeout")
    assert attempts.outcomes == []
    released(h)


def test_the_body_deadline_moves_with_each_part() -> None:
    h = Harness(CONFIG)
    c = one_request(h, post("gw.test", b"", length=5))
    for part in b"hello":
        h.advance(1.9)
        c.send(bytes([part]))
    h.upstreams[0].send(ok())
    assert c.response().status == 200


def test_a_deadline_while_connecting_with_the_body_incomplete_is_a_connect_failure() -> None:
    h = Harness(CONFIG)
    attempts = Attempts(h)
    h.connector.plan.append("hang")
    c = one_request(h, post("gw.test", b"abc", length=10))
    h.advance(1.01)
    assert_gateway_error(c.response(), 502, "upstream_connect_failed")
    assert attempts.statuses() == ["connect_failure"]
    released(h)


# --- filters -------------------------------------------------------------------------------------
FILTERS = """\
server: {body_timeout: 2s}
upstreams:
  app: {targets: ["10.1.0.1:8080"]}
routes:
  - name: f
    match: {path_prefix: /}
    upstream: app
    timeout: %s
    filters: %s
"""


def filtered(chain: str, timeout: str = "null") -> Harness:
    filters.EVENTS.clear()
    return Harness(FILTERS % (timeout, chain))


def test_a_filter_that_raises_answers_500_filter_error_and_nothing_is_forwarded() -> None:
    h = filtered('[{python: "support.filters:Raising"}]')
    c = one_request(h, get("/"))
    doc = assert_gateway_error(c.response(), 500, "filter_error")
    assert "Raising" in doc["detail"]
    assert h.connector.attempts == []
    assert h.factory.filter_errors == {("f", "Raising"): 1}
    c.send(get("/again"))  # the connection and the worker go on
    assert c.response().status == 500


def test_a_filter_returning_something_else_answers_500_filter_error() -> None:
    h = filtered('[{python: "support.filters:Raising", config: {phase: wrong_type}}]')
    c = one_request(h, get("/"))
    assert_gateway_error(c.response(), 500, "filter_error")


def test_a_request_body_filter_that_raises_answers_500() -> None:
    h = filtered('[{python: "support.filters:Raising", config: {phase: request_body}}]')
    c = one_request(h, post("gw.test", b"abc"))
    assert_gateway_error(c.response(), 500, "filter_error")
    assert all(up.transport.aborted for up in h.upstreams)


@pytest.mark.parametrize("phase", ["response", "done"])
def test_a_response_or_done_filter_that_raises_leaves_the_response_alone(phase: str) -> None:
    h = filtered(f'[{{python: "support.filters:Raising", config: {{phase: {phase}}}}}]')
    c = one_request(h, get("/"))
    h.upstreams[0].send(ok(b"fine"))
    assert c.response().body == b"fine"
    assert h.factory.filter_errors == {("f", "Raising"): 1}


def test_an_async_filter_resumes_the_chain_after_its_wait() -> None:
    h = filtered('[{python: "support.filters:Waiting", config: {seconds: 2}}, '
                 '{python: "support.filters:Tagging", config: {name: after}}]')
    c = one_request(h, get("/"))
    ex = c.protocol.current
    assert ex.state == states.FILTERING and h.connector.attempts == []
    h.advance(1.99)
    assert h.connector.attempts == []
    h.advance(0.02)
    assert filters.EVENTS == [("waiting", "request"), ("waiting", "resumed"),
                              ("after", "request")]
    h.upstreams[0].send(ok())
    assert c.response().header("x-seen") == "after"
    assert ("waiting", "done") in filters.EVENTS


def test_an_async_filter_may_answer_after_its_wait() -> None:
    h = filtered('[{python: "support.filters:Waiting", config: {seconds: 1, reply: 202}}]')
    c = one_request(h, get("/"))
    h.advance(1)
    resp = c.response()
    assert (resp.status, resp.body) == (202, b"from the wait")
    assert h.connector.attempts == []


def test_an_async_filter_that_raises_answers_500() -> None:
    h = filtered('[{python: "support.filters:Failing"}]')
    c = one_request(h, get("/"))
    h.advance(0.1)
    assert_gateway_error(c.response(), 500, "filter_error")


def test_a_wait_longer_than_the_route_timeout_is_filter_timeout() -> None:
    h = filtered('[{python: "support.filters:Waiting", config: {forever: true}}]',
                 timeout="1s")
    c = one_request(h, get("/"))
    h.advance(0.99)
    assert c.received == b""
    h.advance(0.02)
    assert_gateway_error(c.response(), 504, "filter_timeout")
    assert ("waiting", "cancelled") in filters.EVENTS
    assert h.connector.attempts == []


def test_a_client_gone_while_a_filter_waits_cancels_the_wait() -> None:
    h = filtered('[{python: "support.filters:Waiting", config: {forever: true}}]')
    c = one_request(h, get("/"))
    c.reset()
    assert ("waiting", "cancelled") in filters.EVENTS
    assert h.last().error_code == "client_closed"


def test_a_local_reply_passes_the_response_filters_of_the_filters_before_it() -> None:
    h = filtered('[{python: "support.filters:Tagging", config: {name: a}}, '
                 '{python: "support.filters:Replying"}, '
                 '{python: "support.filters:Tagging", config: {name: c}}]')
    c = one_request(h, get("/"))
    resp = c.response()
    assert (resp.status, resp.body) == (403, b"not you")
    assert resp.header("x-reply") == "1"
    assert resp.header_all("x-seen") == ["a"]
    assert filters.EVENTS == [("a", "request"), ("replying", "request"), ("a", "response"),
                              ("a", "done")]
    assert h.connector.attempts == []


def test_response_filters_run_last_to_first() -> None:
    h = filtered('[{python: "support.filters:Tagging", config: {name: a}}, '
                 '{python: "support.filters:Tagging", config: {name: b}}]')
    c = one_request(h, get("/"))
    h.upstreams[0].send(ok())
    assert c.response().header_all("x-seen") == ["b", "a"]
    assert [e for e in filters.EVENTS if e[1] == "done"] == [("b", "done"), ("a", "done")]


def test_a_gateway_error_passes_the_response_filters_of_the_filters_passed() -> None:
    h = filtered('[{python: "support.filters:Tagging", config: {name: a}}]')
    h.connector.default = "refuse"
    c = one_request(h, get("/"))
    resp = c.response()
    assert_gateway_error(resp, 502, "upstream_connect_failed")
    assert resp.header("x-seen") == "a"


# --- any sequence of events ----------------------------------------------------------------------
MACHINE = """\
server: {body_timeout: 2s, header_timeout: 5s, idle_timeout: 30s}
upstreams:
  app:
    targets: ["10.1.0.1:8080"]
    connect_timeout: 1s
    response_header_timeout: 3s
    circuit_breaker: {failure_on: [5xx], min_requests: 1, open_for: 1s,
                      half_open_requests: 100000, half_open_timeout: 20s}
routes:
  - name: r
    match: {path_prefix: /}
    upstream: app
    timeout: 8s
    max_concurrent: 2
    retries: {attempts: 3, on: [503, reset, connect_failure, timeout], budget: null,
              backoff: {base: 100ms, max: 400ms}}
"""
REQUESTS = {
    "get": [b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"],
    "post": [b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n", b"abc", b"def"],
    "chunked": [b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"3\r\nabc\r\n", b"0\r\n\r\n"],
    "pipelined": [b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPUT /2 HTTP/1.1\r\nHost: a\r\n"
                  b"Content-Length: 2\r\n\r\n", b"xy"],
}
UPSTREAM_SENDS = {
    "200": b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n",
    "404": b"HTTP/1.1 404 X\r\ncontent-length: 0\r\n\r\n",
    "data": b"ab",
    "end": b"cd",
    "garbage": b"\x00not http\r\n\r\n",
}
_index = st.integers(0, 3)
EVENT = st.one_of(
    st.tuples(st.just("request"), st.sampled_from(sorted(REQUESTS))),
    st.tuples(st.sampled_from(["more", "client_reset", "client_fill", "client_drain"]), _index),
    st.tuples(st.just("upstream"), _index, st.sampled_from(sorted(UPSTREAM_SENDS))),
    st.tuples(st.sampled_from(["up_close", "up_reset", "up_fill", "up_drain"]), _index),
    st.tuples(st.just("next_connect"), st.sampled_from(["ok", "refuse", "hang"])),
    st.tuples(st.just("connected"), st.just(0)),
    st.tuples(st.just("advance"), st.sampled_from([0.05, 0.3, 1.0, 2.5, 10.0])),
)


class Machine:
    """Plays events against a harness; remembers every exchange it saw."""

    def __init__(self) -> None:
        self.h = Harness(MACHINE)
        self.clients: list[tuple[Peer, list[bytes]]] = []
        self.exchanges: dict[int, Any] = {}
        breaker = self.h.cluster().breaker
        assert breaker is not None
        # Open the breaker (a 500), so that tries are half-open probes whose permits must each
        # be settled: an unsettled one would time out as a failed probe. The upstream never
        # answers 5xx here, and the other failures are not the breaker's (failure_on), so it
        # stays half-open whatever happens; retries come from resets, timeouts, refusals.
        breaker.record(Outcome.of_status(500), 0.0, self.h.loop.now)
        self.breaker = breaker

    def play(self, event: tuple[Any, ...]) -> None:
        h, kind = self.h, event[0]
        if kind == "request":
            c = h.client((f"10.0.0.{len(self.clients) + 1}", 1000))
            pieces = list(REQUESTS[event[1]])
            self.clients.append((c, pieces))
            c.send(pieces.pop(0))
        elif kind == "advance":
            h.advance(event[1])
        elif kind == "next_connect":
            h.connector.plan.append(event[1])
        elif kind == "connected":
            waiting = [f for f in h.connector.hanging if not f.done()]
            if waiting:
                waiting[0].set_result(None)
                h.run()
        elif kind == "upstream":
            if h.upstreams:
                h.upstreams[event[1] % len(h.upstreams)].send(UPSTREAM_SENDS[event[2]])
        elif kind.startswith("up_"):
            if h.upstreams:
                getattr(h.upstreams[event[1] % len(h.upstreams)], kind[3:])()
        elif self.clients:
            c, pieces = self.clients[event[1] % len(self.clients)]
            if kind == "more":
                if pieces:
                    c.send(pieces.pop(0))
            else:
                getattr(c, kind[7:])()
        self.remember()

    def remember(self) -> None:
        for c, _ in self.clients:
            conn = c.protocol
            for ex in [conn.current, *conn.queue]:
                if ex is not None:
                    self.exchanges[id(ex)] = ex

    def finish(self) -> None:
        for c, _ in self.clients:
            c.reset()
        self.h.advance(100)
        self.remember()


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENT, max_size=25))
def test_any_sequence_of_events_stays_in_the_table_and_gives_everything_back(
        events: list[tuple[Any, ...]]) -> None:
    m = Machine()
    for event in events:
        m.play(event)  # a transition outside the table raises here
    m.finish()
    h = m.h
    finished = [id(ex) for ex in h.done]
    assert len(finished) == len(set(finished)), "an exchange finished twice"
    for key, ex in m.exchanges.items():
        assert ex.state == states.DONE, ex
        started = ex.route is not None or ex.error_code is not None
        assert finished.count(key) == (1 if started else 0), ex
    cluster = h.cluster()
    assert cluster.active_requests == 0 and cluster.active_retries == 0
    assert all(e.active == 0 for e in cluster.endpoints)
    route = h.snapshot.routes[0]
    assert route.concurrency is not None and route.concurrency.active == 0
    # Every breaker permit was settled (recorded or given back): none is left to time out.
    now = h.loop.now + 30
    assert m.breaker.state(now) == "half_open"
    assert "probe_timeout" not in [t.reason for t in m.breaker.drain()]
    pool = h.pool()
    assert pool.open == sum(1 for up in h.upstreams if not up.transport.lost)
    assert all(not conn.closed for conn in pool.idle)


# --- a pipelined request's body ------------------------------------------------------------------
LIMITED = """\
upstreams: {app: {targets: ["10.1.0.1:8080"]}}
routes: [{name: r, match: {path_prefix: /}, upstream: app, max_body_size: 10}]
"""


def test_a_queued_request_body_over_max_body_size_is_413() -> None:
    """The body of a request read while the one before it is answered must pass the route's
    body filters too (it was forwarded whole, past max_body_size)."""
    h = Harness(LIMITED)
    c = h.client()
    c.send(get("/first") + b"POST /second HTTP/1.1\r\nHost: gw.test\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n20\r\n" + b"x" * 32 + b"\r\n0\r\n\r\n")
    up = h.upstreams[0]
    up.send(ok(b"first"))
    first, second = c.responses()
    assert first.body == b"first"
    assert_gateway_error(second, 413, "payload_too_large")
    assert [r.target for r in up.requests()] == ["/first"]
    assert b"xxxx" not in up.received


def test_a_queued_request_body_within_the_limit_is_forwarded_whole() -> None:
    h = Harness(LIMITED)
    c = h.client()
    c.send(get("/first") + b"POST /second HTTP/1.1\r\nHost: gw.test\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    c.send(b"2\r\nde\r\n0\r\nX-T: 1\r\n\r\n")
    up = h.upstreams[0]
    up.send(ok(b"first"))
    second = up.requests()[1]
    assert (second.body, second.trailers) == (b"abcde", [("X-T", "1")])
    up.send(ok(b"second"))
    assert [r.body for r in c.responses()] == [b"first", b"second"]


def test_a_large_queued_body_pauses_reading_until_its_turn() -> None:
    h = Harness()
    c = h.client()
    c.send(get("/first") + b"POST /second HTTP/1.1\r\nHost: gw.test\r\n"
           b"Content-Length: 200000\r\n\r\n")
    c.send(b"y" * 100000)
    assert c.transport.calls[-1] == "pause_reading"
    c.send(b"y" * 100000)  # waits unread
    up = h.upstreams[0]
    up.send(ok(b"first"))
    assert c.transport.calls.count("resume_reading") >= 1
    assert up.requests()[1].body == b"y" * 200000
    up.send(ok(b"second"))
    assert [r.body for r in c.responses()] == [b"first", b"second"]


def test_body_filters_read_and_change_trailers_both_ways() -> None:
    h = filtered('[{python: "support.filters:Trailing"}]')
    c = h.client()
    c.send(b"POST / HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n0\r\nX-Sum: 3\r\n\r\n")
    up = h.upstreams[0]
    [req] = up.requests()
    assert (req.body, req.trailers) == (b"abc", [("X-Sum", "3"), ("x-filter", "1")])
    up.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nok\r\n0\r\nX-Secret: s\r\nX-Count: 1\r\n\r\n")
    resp = c.response()
    assert (resp.body, resp.trailers) == (b"ok", [("X-Count", "1"), ("x-filter", "1")])
    assert filters.EVENTS == [("trailing", "request [('X-Sum', '3')]"),
                              ("trailing", "response [('X-Secret', 's'), ('X-Count', '1')]")]
