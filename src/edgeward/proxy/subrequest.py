"""Requests the gateway makes itself to an upstream: forward auth, mirroring, revalidation.

`fetch(cluster, head, body, ...)` picks an endpoint with the cluster's balancer, sends the
request on a pooled (or new) connection and returns the response head and body, bounded in
size and time. It reuses the data plane's codec and pools, so a subrequest costs what a proxied
request does, and never what aiohttp would. Outcomes feed the cluster's balancer, breaker and
outlier detection like any other try; a refused admission is a `SubrequestError`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Final

from mypy_extensions import mypyc_attr

from edgeward.http.fields import Headers
from edgeward.http.message import NO_BODY, RequestHead, ResponseHead
from edgeward.http.stream import ClientStream, ResponseHandler, Trailers
from edgeward.proxy.cluster import Cluster
from edgeward.resilience.outcome import Outcome

# The most response body a subrequest keeps by default: auth answers and revalidations are
# small; a larger body is an error rather than memory spent.
DEFAULT_MAX_BODY: Final = 64 * 1024

_TIMEOUT: Final = Outcome.of_error("timeout")
_RESET: Final = Outcome.of_error("reset")
_CONNECT_FAILURE: Final = Outcome.of_error("connect_failure")


@mypyc_attr(native_class=False)
class SubrequestError(Exception):
    """The subrequest got no usable answer; `code` is the gateway's error code for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Fetched:
    """A subrequest's answer: the response head and the whole body."""

    __slots__ = ("head", "body")

    def __init__(self, head: ResponseHead, body: bytes) -> None:
        self.head = head
        self.body = body

    @property
    def status(self) -> int:
        return self.head.status


def make_head(method: str, target: str, authority: str,
              fields: list[tuple[str, str]] | None = None, body: bytes = b"",
              client_ip: str = "", request_id: str = "") -> RequestHead:
    """A request head for a subrequest (fields are checked like a filter's)."""
    headers = Headers([])
    headers.append(b"host", authority.encode("latin-1"))
    for name, value in fields or ():
        headers.add(name, value)
    path, _, _ = target.partition("?")
    head = RequestHead(method, target.encode("latin-1"), path, authority.partition(":")[0],
                       authority.encode("latin-1"), headers, len(body) if body else NO_BODY,
                       client_ip, request_id)
    return head


class _Collector(ResponseHandler):
    """Gathers one response for `fetch`."""

    __slots__ = ("done", "head", "parts", "size", "max_body", "conn", "got_end", "keep")

    def __init__(self, done: asyncio.Future[None], max_body: int, keep: bool = True) -> None:
        self.done = done
        self.head: ResponseHead | None = None
        self.parts: list[bytes] = []
        self.size = 0
        self.max_body = max_body
        self.conn: ClientStream | None = None
        self.got_end = False
        self.keep = keep  # False: the body is read to its end and dropped

    def on_response_head(self, resp: ResponseHead) -> None:
        self.head = resp

    def on_response_data(self, data: bytes) -> None:
        self.size += len(data)
        if not self.keep:
            return
        if self.size > self.max_body:
            self._finish(SubrequestError("bad_gateway", "the response body is too large"))
            return
        self.parts.append(data)

    def on_response_end(self, trailers: Trailers) -> None:
        self.got_end = True
        self._finish(None)

    def on_upstream_lost(self, got_bytes: bool, error: str) -> None:
        self.conn = None
        self._finish(SubrequestError(error, "the upstream closed the connection"))

    def on_upstream_read_done(self) -> None:
        pass

    def on_upstream_paused(self) -> None:
        pass

    def on_upstream_resumed(self) -> None:
        pass

    def _finish(self, exc: SubrequestError | None) -> None:
        if self.done.done():
            return
        if exc is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(exc)


async def fetch(cluster: Cluster, head: RequestHead, body: bytes = b"", *,
                timeout: float, max_body: int = DEFAULT_MAX_BODY,
                keep_body: bool = True) -> Fetched:
    """Send `head` (and `body`) to an endpoint of `cluster`; raises SubrequestError.

    `keep_body=False` (mirroring: only the outcome matters) reads the response body to its
    end, whatever its size, and keeps none of it (the answer's body is then b"")."""
    now = time.monotonic()
    endpoint = cluster.pick(head, "", now)
    if endpoint is None:
        raise SubrequestError("no_healthy_upstream", f"upstream {cluster.name} has no endpoint")
    if cluster.guarded and not cluster.admit(endpoint, now):
        raise SubrequestError("circuit_open", f"upstream {cluster.name}'s breaker is open")
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    collector = _Collector(done, max_body, keep_body)
    pool = cluster.pools[endpoint]
    outcome: Outcome | None = _TIMEOUT  # None: cancelled, no outcome to record
    conn: ClientStream | None = None
    endpoint.active += 1
    try:
        conn = pool.take()
        if conn is None:
            try:
                conn = await asyncio.wait_for(pool.connect(), cluster.connect_timeout)
            except (TimeoutError, OSError) as exc:
                outcome = _CONNECT_FAILURE
                if isinstance(exc, ssl.SSLError):
                    raise SubrequestError("upstream_tls_error", "TLS handshake with upstream "
                                          f"{cluster.name} failed") from exc
                raise SubrequestError("upstream_connect_failed",
                                      f"could not connect to upstream {cluster.name}") from exc
        collector.conn = conn
        conn.send_head(head, collector)
        if body:
            conn.send_data(body)
            conn.send_end(None)
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except TimeoutError:
            raise SubrequestError("upstream_timeout",
                                  f"upstream {cluster.name} did not answer in time") from None
        except SubrequestError:
            outcome = _RESET
            raise
        resp = collector.head
        assert resp is not None
        outcome = Outcome.of_status(resp.status)
        return Fetched(resp, b"".join(collector.parts))
    except asyncio.CancelledError:
        outcome = None
        raise
    finally:
        endpoint.active -= 1
        if conn is not None:
            if collector.got_end:
                conn.release(reusable=True)
            else:
                conn.abort()
        end = time.monotonic()
        if outcome is None:
            cluster.release(endpoint, end, end - now)
        else:
            cluster.record(endpoint, outcome, end - now, end)
