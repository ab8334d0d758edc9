"""Fakes for tests without sockets: a transport, an event loop with a manual clock, and a
harness running the real listener, exchange and upstream codec over them.

    h = Harness(CONFIG)                    # a compiled config, an ExchangeFactory, a listener
    c = h.client()                         # an H1Connection on a FakeTransport
    c.send(b"GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n")
    up = h.upstreams[0]                    # the upstream connection the exchange opened
    up.send(b"HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\nok")
    assert c.response().status == 200
    h.advance(30)                          # run the timers due in the next 30 s

Nothing here sleeps or opens a socket; time moves only when a test calls `advance`. The loop
runs asyncio's own `Handle`, `TimerHandle`, `Future` and `Task` (so a filter's coroutine and a
connect task run as they would on uvloop); a callback that raises is recorded by the loop and
re-raised by the harness as `LoopError`, so a failure inside the loop fails the test.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import random
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httptools

from edgeward.compose import Registry, compile_snapshot
from edgeward.config.schema import GatewayConfig
from edgeward.config.text import load_text
from edgeward.http.h1.client import EndpointPool, UpstreamConnection
from edgeward.http.h1.server import H1Connection
from edgeward.http.listener import ListenerState
from edgeward.observe.gateway_metrics import GatewayMetrics
from edgeward.proxy.cluster import Cluster
from edgeward.proxy.factory import ExchangeFactory
from edgeward.proxy.telemetry import Telemetry
from edgeward.sections import listener_settings
from support.rawhttp import ConnectionClosed, Response, ResponseReader

START = 1000.0  # the fake clock's reading when a loop is made


class LoopError(AssertionError):
    """A callback run by the fake loop raised: the loop caught it, the test must not."""


class FakeLoop(asyncio.AbstractEventLoop):
    """Enough of an event loop for the codecs, the exchange and its tasks, on a manual clock.

    `run()` runs the callbacks that are ready (and those they make ready) and nothing that
    is scheduled for later; `advance(seconds)` moves the clock, running each timer at its
    time. `create_connection` asks the `connector`, which by default connects at once.
    """

    def __init__(self, start: float = START) -> None:
        self.now = start
        self.ready: deque[asyncio.Handle] = deque()
        self.timers: list[tuple[float, int, asyncio.TimerHandle]] = []
        self.seq = 0
        self.errors: list[dict[str, Any]] = []
        self.connector = Connector(self)

    # the clock and callbacks -----------------------------------------------------------------
    def time(self) -> float:
        return self.now

    def call_soon(self, callback: Callable[..., object], *args: Any,
                  context: Any = None) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self.ready.append(handle)
        return handle

    def call_at(self, when: float, callback: Callable[..., object], *args: Any,
                context: Any = None) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, args, self, context)
        self.seq += 1
        heapq.heappush(self.timers, (when, self.seq, handle))
        return handle

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any,
                   context: Any = None) -> asyncio.TimerHandle:
        return self.call_at(self.now + delay, callback, *args, context=context)

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        pass  # a cancelled timer is skipped when its turn comes

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(self, coro: Any, *, name: str | None = None,
                    context: Any = None) -> asyncio.Task[Any]:
        return asyncio.Task(coro, loop=self, name=name, context=context)

    def get_debug(self) -> bool:
        return False

    def is_running(self) -> bool:
        return False

    def is_closed(self) -> bool:
        return False

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.errors.append(context)

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.errors.append(context)

    async def create_connection(self, protocol_factory: Callable[[], asyncio.BaseProtocol],
                                host: str | None = None, port: int | None = None,
                                **kw: Any) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        return await self.connector.connect(protocol_factory, host or "", port or 0)

    # running ---------------------------------------------------------------------------------
    @contextmanager
    def running(self) -> Iterator[None]:
        """This loop is the running loop (for asyncio.sleep, ensure_future, ...) meanwhile."""
        before = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self)
        try:
            yield
        finally:
            asyncio.events._set_running_loop(before)

    def run(self) -> None:
        """Run every ready callback, and those they make ready, until none is left."""
        with self.running():
            self._run_ready()
        self.check()

    def advance(self, seconds: float) -> None:
        """Move the clock by `seconds`, running each timer due meanwhile at its own time."""
        target = self.now + seconds
        with self.running():
            self._run_ready()
            while self.timers and self.timers[0][0] <= target:
                when, _, handle = heapq.heappop(self.timers)
                if handle.cancelled():
                    continue
                self.now = max(self.now, when)
                handle._run()
                self._run_ready()
            self.now = target
            self._run_ready()
        self.check()

    def pending_timers(self) -> list[float]:
        """When the timers not cancelled are due, soonest first."""
        return sorted(when for when, _, h in self.timers if not h.cancelled())

    def check(self) -> None:
        if self.errors:
            errors, self.errors = self.errors, []
            first = errors[0]
            exc = first.get("exception")
            raise LoopError(f"{first.get('message')}: {exc!r}") from exc

    def _run_ready(self) -> None:
        for _ in range(100_000):
            if not self.ready:
                return
            handle = self.ready.popleft()
            if not handle.cancelled():
                handle._run()
        raise LoopError("callbacks keep scheduling callbacks: a busy loop")


class FakeTransport(asyncio.Transport):
    """Records what a protocol does to its transport; the test plays the peer through it.

    `data` is everything written; `calls` names each call (write, writelines, close, abort,
    pause_reading, resume_reading). Like uvloop, a write after close or abort raises, and the
    protocol's `connection_lost` comes in the next loop iteration. Bytes the peer sends while
    reading is paused wait (as in the kernel) until reading resumes.
    """

    def __init__(self, loop: FakeLoop, protocol: Any, peer: tuple[str, int] | None) -> None:
        super().__init__()
        self.loop = loop
        self.protocol = protocol
        self.peer = peer
        self.chunks: list[bytes] = []
        self.calls: list[str] = []
        self.closed = False
        self.aborted = False
        self.lost = False
        self.reading = True
        self.waiting: list[bytes] = []  # sent by the peer while reading was paused
        self.limits: tuple[int | None, int | None] | None = None

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)

    # what the protocol calls -------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append("write")
        self._record(bytes(data))

    def writelines(self, parts: Any) -> None:
        self.calls.append("writelines")
        self._record(b"".join(parts))

    def _record(self, data: bytes) -> None:
        if self.closed:
            raise RuntimeError("write to a closed transport")
        self.chunks.append(data)

    def close(self) -> None:
        if not self.closed:
            self.calls.append("close")
            self.closed = True
            self.loop.call_soon(self._lose, None)

    def abort(self) -> None:
        self.calls.append("abort")
        self.aborted = True
        if not self.closed:
            self.closed = True
            self.loop.call_soon(self._lose, None)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.calls.append("pause_reading")
        self.reading = False

    def resume_reading(self) -> None:
        self.calls.append("resume_reading")
        self.reading = True
        if self.waiting:
            self.loop.call_soon(self._deliver_waiting)

    def is_reading(self) -> bool:
        return self.reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.limits = (high, low)

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" and self.peer is not None else default

    # what the peer does --------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """The peer sent `data`: the protocol reads it now, or when reading resumes."""
        if self.lost or self.closed:
            return
        if not self.reading or self.waiting:
            self.waiting.append(data)
            return
        self.protocol.data_received(data)

    def feed_eof(self) -> None:
        """The peer closed its side: asyncio asks the protocol, then closes the transport."""
        if self.lost or self.closed:
            return
        if not self.protocol.eof_received():
            self.close()

    def reset(self) -> None:
        """The connection broke (RST): the protocol loses it with an error."""
        if not self.lost:
            self.closed = True
            self.loop.call_soon(self._lose, ConnectionResetError(104, "Connection reset by peer"))

    def fill(self) -> None:
        """The write buffer went over its high-water mark (the peer stopped reading)."""
        self.protocol.pause_writing()

    def drain(self) -> None:
        """The write buffer drained below its low-water mark."""
        self.protocol.resume_writing()

    def _deliver_waiting(self) -> None:
        while self.waiting and self.reading and not self.closed:
            self.protocol.data_received(self.waiting.pop(0))

    def _lose(self, exc: Exception | None) -> None:
        if not self.lost:
            self.lost = True
            self.protocol.connection_lost(exc)


class Connector:
    """What `create_connection` does, attempt by attempt: `plan` holds the next attempts'
    fates ("ok", "refuse", "hang"), `default` the fate of attempts beyond it."""

    def __init__(self, loop: FakeLoop) -> None:
        self.loop = loop
        self.plan: deque[str] = deque()
        self.default = "ok"
        self.attempts: list[tuple[str, int]] = []
        self.upstreams: list[Peer] = []
        self.hanging: list[asyncio.Future[None]] = []

    async def connect(self, factory: Callable[[], Any], host: str, port: int
                      ) -> tuple[FakeTransport, Any]:
        self.attempts.append((host, port))
        fate = self.plan.popleft() if self.plan else self.default
        if fate == "refuse":
            raise ConnectionRefusedError(111, "Connection refused")
        if fate == "hang":
            wait: asyncio.Future[None] = self.loop.create_future()
            self.hanging.append(wait)
            await wait  # until cancelled (a connect timeout) or set by the test
        assert fate in ("ok", "hang"), fate
        protocol = factory()
        transport = FakeTransport(self.loop, protocol, (host, port))
        protocol.connection_made(transport)
        self.upstreams.append(Peer(self.loop, protocol, transport))
        return transport, protocol


class Peer:
    """The far end of one fake connection: what the gateway wrote to it, and what it sends."""

    def __init__(self, loop: FakeLoop, protocol: Any, transport: FakeTransport) -> None:
        self.loop = loop
        self.protocol = protocol
        self.transport = transport
        self.read_at = 0  # how much of `received` was parsed by `responses`/`requests`

    @property
    def received(self) -> bytes:
        return self.transport.data

    @property
    def closed(self) -> bool:
        """The gateway closed or aborted this connection."""
        return self.transport.closed

    # Protocol callbacks run while the loop is the running one, as they do on a real loop.
    def send(self, data: bytes) -> None:
        with self.loop.running():
            self.transport.feed(data)
        self.loop.run()

    def send_bytewise(self, data: bytes) -> None:
        """`data` one byte per read, the loop running after each."""
        for i in range(len(data)):
            self.send(data[i:i + 1])

    def close(self) -> None:
        """The peer closes its side (FIN)."""
        with self.loop.running():
            self.transport.feed_eof()
        self.loop.run()

    def reset(self) -> None:
        """The connection breaks (RST)."""
        self.transport.reset()
        self.loop.run()

    def fill(self) -> None:
        """The gateway's writes to this peer pile up (it stopped reading)."""
        with self.loop.running():
            self.transport.fill()
        self.loop.run()

    def drain(self) -> None:
        with self.loop.running():
            self.transport.drain()
        self.loop.run()

    def requests(self) -> list[ParsedRequest]:
        """The requests the gateway wrote here (complete ones)."""
        return parse_requests(self.received)

    def responses(self, *, head_request: bool = False) -> list[Response]:
        """Every complete response the gateway wrote here, interim ones included."""
        return BytesReader(self.received, self.closed).all(head_request=head_request)

    def response(self, *, head_request: bool = False) -> Response:
        """The next final response not read before (1xx skipped)."""
        reader = BytesReader(self.received[self.read_at:], self.closed)
        _, resp = reader.final_response(head_request=head_request)
        self.read_at = len(self.received) - len(reader.buf)
        return resp

    def __repr__(self) -> str:
        return f"<Peer {self.protocol!r} received={len(self.received)}B closed={self.closed}>"


class Incomplete(Exception):
    """The bytes end inside a response, and the connection is still open."""


class BytesReader(ResponseReader):
    """Responses parsed from bytes already written (`closed`: nothing more will come)."""

    def __init__(self, data: bytes, closed: bool) -> None:
        super().__init__()
        self.rest = data
        self.closed = closed

    def _fill(self) -> None:
        if not self.rest:
            if self.closed:
                raise ConnectionClosed("eof")
            raise Incomplete
        self.buf += self.rest
        self.rest = b""

    def all(self, *, head_request: bool = False) -> list[Response]:
        out: list[Response] = []
        while self.buf or self.rest:
            try:
                out.append(self.read_response(head_request=head_request))
            except (Incomplete, ConnectionClosed):
                break
        return out


@dataclass
class ParsedRequest:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]


class _RequestCollector:
    """httptools callbacks gathering whole requests."""

    def __init__(self) -> None:
        self.parser: Any = None
        self.done: list[ParsedRequest] = []
        self.current = ParsedRequest("", "", [])
        self.url = b""
        self.in_body = False

    def on_message_begin(self) -> None:
        self.current = ParsedRequest("", "", [])
        self.url = b""
        self.in_body = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        pair = (name.decode("latin-1"), value.decode("latin-1"))
        (self.current.trailers if self.in_body else self.current.headers).append(pair)

    def on_headers_complete(self) -> None:
        self.current.method = self.parser.get_method().decode("latin-1")
        self.current.target = self.url.decode("latin-1")
        self.in_body = True

    def on_body(self, body: bytes) -> None:
        self.current.body += body

    def on_message_complete(self) -> None:
        self.done.append(self.current)


def parse_requests(data: bytes) -> list[ParsedRequest]:
    """The complete HTTP/1.1 requests in `data`, as an origin would read them."""
    collector = _RequestCollector()
    parser = collector.parser = httptools.HttpRequestParser(collector)
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        pass  # a WebSocket handshake: what follows it is the tunnel's
    return collector.done


# the harness -------------------------------------------------------------------------------------
CONFIG = """\
upstreams:
  app: {targets: ["10.1.0.1:8080"]}
routes:
  - {name: app, match: {path_prefix: /}, upstream: app}
"""


@functools.lru_cache(maxsize=256)
def _load(text: str) -> GatewayConfig:
    """A config read once per text (it is immutable); each harness compiles its own."""
    return load_text(text, "test.yaml")


class Harness:
    """The real listener state, exchange factory and compiled config on a fake loop.

    Exchanges that finish are in `done` (in order; telemetry records them too); upstream
    connections the exchanges opened are in `upstreams`, in the order they were opened.
    """

    def __init__(self, config: str = CONFIG, *, start: float = START, seed: int = 0) -> None:
        self.loop = FakeLoop(start)
        cfg = _load(config)
        self.config = cfg
        self.registry = Registry()
        self.snapshot = compile_snapshot(cfg, self.loop, self.registry,
                                         rng=random.Random(seed))
        self.snapshot.rng = random.Random(seed)  # retry jitter
        self.settings = listener_settings(cfg)
        self.factory = ExchangeFactory(self.snapshot, self.settings)
        self.factory.clock = self.loop.time
        self.telemetry = Telemetry(GatewayMetrics(), None, None)
        self.done: list[Any] = []
        self.factory.on_done = self._done
        self.state = ListenerState(self.settings, self.factory)

    def _done(self, exchange: Any) -> None:
        self.done.append(exchange)
        self.telemetry.exchange_done(exchange)

    def client(self, peer: tuple[str, int] = ("10.0.0.1", 5555)) -> Peer:
        """A new client connection (an H1Connection on a fake transport)."""
        conn = H1Connection(self.state, self.loop)
        transport = FakeTransport(self.loop, conn, peer)
        with self.loop.running():
            conn.connection_made(transport)
        return Peer(self.loop, conn, transport)

    @property
    def upstreams(self) -> list[Peer]:
        return self.loop.connector.upstreams

    @property
    def connector(self) -> Connector:
        return self.loop.connector

    def cluster(self, name: str = "app") -> Cluster:
        return self.snapshot.clusters[name]

    def pool(self, upstream: str = "app", index: int = 0) -> EndpointPool:
        cluster = self.cluster(upstream)
        return cluster.pools[cluster.endpoints[index]]

    def pooled(self, upstream: str = "app", index: int = 0) -> Peer:
        """An idle keep-alive connection in the endpoint's pool, as an earlier request would
        have left it (the next request there takes it: a reused connection)."""
        pool = self.pool(upstream, index)
        conn = UpstreamConnection(pool)
        endpoint = pool.endpoint
        transport = FakeTransport(self.loop, conn, (endpoint.host, endpoint.port))
        conn.connection_made(transport)
        pool.give_back(conn)
        return Peer(self.loop, conn, transport)

    def run(self) -> None:
        self.loop.run()

    def advance(self, seconds: float) -> None:
        self.loop.advance(seconds)

    def last(self) -> Any:
        """The exchange that finished last."""
        assert self.done, "no exchange has finished"
        return self.done[-1]


def ok(body: bytes = b"ok", extra: bytes = b"") -> bytes:
    """An upstream's 200 response with a Content-Length body."""
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%b\r\n%b" % (len(body), extra, body)


def get(target: str = "/", host: str = "gw.test", extra: bytes = b"") -> bytes:
    return b"GET %b HTTP/1.1\r\nHost: %b\r\n%b\r\n" % (target.encode(), host.encode(), extra)
