"""The access log line is exactly the JSON of the documented record, whatever the request."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.balance.endpoint import Endpoint
from edgeward.http.fields import Headers
from edgeward.http.h1.server import H1Connection
from edgeward.http.listener import ListenerSettings, ListenerState
from edgeward.http.message import NO_BODY, RequestHead
from edgeward.observe.access_log import FIELDS
from edgeward.proxy.exchange import Exchange
from edgeward.proxy.factory import ExchangeFactory
from edgeward.proxy.forward import Forwarder
from edgeward.proxy.snapshot import Snapshot
from edgeward.proxy.telemetry import access_line, access_record
from edgeward.proxy.trace import Trace

LOOP = asyncio.new_event_loop()  # never run: the listener only needs one to exist
SETTINGS = ListenerSettings(header_timeout=1.0, idle_timeout=1.0, max_request_line=1024,
                            max_header_bytes=1024, max_pipelined=1, trusted_proxies=[])
text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FFF), max_size=40)


@settings(max_examples=200, deadline=None)
@given(path=text, host=text, rid=text, error=st.none() | text, status=st.integers(0, 599),
       duration=st.floats(0, 100, allow_nan=False), upstream_time=st.floats(0, 10),
       attempts=st.integers(0, 5), traced=st.booleans(), route=text)
def test_access_line_is_the_json_of_the_record(
        path: str, host: str, rid: str, error: str | None, status: int, duration: float,
        upstream_time: float, attempts: int, traced: bool, route: str) -> None:
    head = RequestHead("GET", b"/", path, host, b"h", Headers([]), NO_BODY, "10.0.0.1", rid)
    factory = ExchangeFactory(Snapshot(lambda h: None, [], {}), SETTINGS)
    conn = H1Connection(ListenerState(SETTINGS, factory), LOOP)
    ex = Exchange(conn.stream, head, factory)
    fwd = ex.fwd = Forwarder(ex)
    ex.status, ex.error_code = status, error
    fwd.attempt, fwd.upstream_time = attempts, upstream_time
    fwd.endpoint = Endpoint("10.1.1.1", 8080)
    ex.bytes_out = 12
    trace = Trace("ab" * 16, "cd" * 8, None, True, 0) if traced else None
    line: dict[str, Any] = json.loads(access_line(ex, route, "up", duration, trace))
    want = access_record(ex, route, "up", duration, trace)
    assert list(line) == list(FIELDS)
    line.pop("time"), want.pop("time")
    assert line == want
