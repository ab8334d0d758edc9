"""The mirror filter without sockets: a fake subrequest client stands in for the shadow."""

from __future__ import annotations

import asyncio
import random

from edgeward.filters.events import FilterEvents
from edgeward.filters.mirror import Mirror
from edgeward.http.fields import Headers
from edgeward.http.message import STREAMED, RequestHead


def head(body_length: int = 0) -> RequestHead:
    h = RequestHead("POST", b"/x", "/x", "h", b"h", Headers([(b"host", b"h")]), body_length,
                    "10.0.0.1", "rid")
    h.route_name = "r"
    return h


def mirror(fetch: object, events: FilterEvents, **kw: object) -> Mirror:
    args: dict[str, object] = dict(cluster="shadow-cluster", fetch=fetch, upstream="shadow",
                                   percent=100.0, timeout=5.0, max_body=10, max_in_flight=1,
                                   marker="x-edgeward-mirror", rng=random.Random(1),
                                   events=events)
    args.update(kw)
    return Mirror(**args)  # type: ignore[arg-type]


async def test_copies_beyond_max_in_flight_are_dropped_not_queued() -> None:
    release = asyncio.Event()
    sent: list[RequestHead] = []

    async def fetch(cluster: object, h: RequestHead, body: bytes, **kw: object) -> None:
        sent.append(h)
        await release.wait()

    events = FilterEvents()
    m = mirror(fetch, events)
    assert m.on_request(head()) is None
    assert m.on_request(head()) is None  # the first copy is still under way
    while not sent:  # the copy's task starts on the next loop iterations
        await asyncio.sleep(0)
    assert len(sent) == 1 and m.in_flight == 1
    assert events.counts == {("mirror", "r", "shadow", "dropped"): 1}
    release.set()
    await asyncio.gather(*m.tasks)
    assert m.in_flight == 0
    assert events.counts[("mirror", "r", "shadow", "ok")] == 1
    copy = sent[0]
    assert copy.headers.get("x-edgeward-mirror") == "1" and copy.request_id == "rid"


async def test_streamed_body_is_copied_whole_or_not_at_all() -> None:
    bodies: list[bytes] = []

    async def fetch(cluster: object, h: RequestHead, body: bytes, **kw: object) -> None:
        bodies.append(body)

    events = FilterEvents()
    m = mirror(fetch, events, max_in_flight=10)
    small = head(STREAMED)
    m.on_request(small)
    assert m.on_request_body(small, b"abc", False) == b"abc"   # the primary's bytes go on
    assert m.on_request_body(small, b"def", True) == b"def"
    big = head(STREAMED)
    m.on_request(big)
    m.on_request_body(big, b"0123456789", False)
    m.on_request_body(big, b"x", True)                         # 11 bytes: over max_body
    await asyncio.gather(*m.tasks)
    assert bodies == [b"abcdef"]
    assert events.counts[("mirror", "r", "shadow", "too_large")] == 1


async def test_a_failing_shadow_is_counted_and_never_raised() -> None:
    async def fetch(cluster: object, h: RequestHead, body: bytes, **kw: object) -> None:
        raise ConnectionRefusedError("shadow down")

    events = FilterEvents()
    m = mirror(fetch, events)
    assert m.on_request(head()) is None
    await asyncio.gather(*m.tasks)
    assert events.counts == {("mirror", "r", "shadow", "error"): 1}


async def test_percent_draws_per_request() -> None:
    async def fetch(cluster: object, h: RequestHead, body: bytes, **kw: object) -> None:
        return None

    events = FilterEvents()
    m = mirror(fetch, events, percent=25.0, max_in_flight=10_000, rng=random.Random(7))
    for _ in range(4000):
        m.on_request(head())
    await asyncio.gather(*m.tasks)
    copied = events.counts[("mirror", "r", "shadow", "ok")]
    assert 850 < copied < 1150  # 25% of 4000, seeded
