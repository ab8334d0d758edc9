"""Active health checks: the pure core with hypothesis, the shell over real sockets."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.balance.endpoint import Endpoint
from edgeward.discovery.health import (
    ActiveHealthChecker,
    HealthConfig,
    HealthState,
    Transition,
    first_delay,
    next_delay,
    parse_status_line,
    probe,
    probe_request,
)
from edgeward.structs import ConfigError, load_struct

# ---------------------------------------------------------------------------------------------
# Config


def test_defaults_are_pinned() -> None:
    cfg = HealthConfig()
    assert (cfg.path, cfg.interval, cfg.timeout) == ("/", 2.0, 1.0)
    assert (cfg.unhealthy_after, cfg.healthy_after, cfg.jitter) == (3, 2, 0.1)
    assert cfg.expected_statuses is None and cfg.host is None
    assert cfg.ok_statuses() == frozenset(range(200, 300))


def test_yaml_mapping_is_read() -> None:
    cfg = load_struct(HealthConfig, {
        "path": "/healthz", "interval": "5s", "timeout": "250ms", "healthy_after": 1,
        "unhealthy_after": 2, "expected_statuses": [200, 204], "host": "orders.internal",
    })
    assert cfg.interval == 5.0 and cfg.timeout == 0.25
    assert cfg.ok_statuses() == frozenset({200, 204})


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"timeout": "3s", "interval": "2s"}, "health.timeout"),
        ({"interval": "0s"}, "health.interval"),
        ({"path": "healthz"}, "health.path"),
        ({"path": "/a b"}, "health.path"),
        ({"host": "evil\r\nX-Injected: 1"}, "health.host"),
        ({"unhealthy_after": 0}, "health.unhealthy_after"),
        ({"healthy_after": 0}, "health.healthy_after"),
        ({"expected_statuses": [200, 700]}, "health.expected_statuses"),
        ({"expected_statuses": []}, "health.expected_statuses"),
        ({"jitter": 0.9}, "health.jitter"),
        ({"intervall": "2s"}, "health.intervall"),
    ],
)
def test_bad_config_names_the_key(raw: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_struct(HealthConfig, raw, "gw.yaml", "health")
    assert [p.path for p in info.value.problems] == [path]


def test_checker_refuses_a_bad_config_built_in_code() -> None:
    with pytest.raises(ValueError, match="timeout: must not exceed interval"):
        ActiveHealthChecker(list, HealthConfig(interval=1.0, timeout=2.0), lambda e, t: None)


# ---------------------------------------------------------------------------------------------
# Sans-I/O core


def test_flips_after_thresholds_and_a_success_resets_the_failure_run() -> None:
    s = HealthState(healthy=True, healthy_after=2, unhealthy_after=3, now=0.0)
    assert [s.record(False, 1.0), s.record(False, 2.0), s.record(True, 3.0)] == [None] * 3
    assert [s.record(False, 4.0), s.record(False, 5.0)] == [None, None]
    assert s.record(False, 6.0) is Transition.BECAME_UNHEALTHY
    assert (s.healthy, s.changed_at) == (False, 6.0)
    assert s.record(False, 7.0) is None  # already unhealthy: no second transition
    assert s.record(True, 8.0) is None
    assert s.record(True, 9.0) is Transition.BECAME_HEALTHY
    assert s.healthy


def _reference(start: bool, rise: int, fall: int, results: list[bool]) -> bool:
    healthy, run_ok, run_bad = start, 0, 0
    for ok in results:
        run_ok, run_bad = (run_ok + 1, 0) if ok else (0, run_bad + 1)
        if healthy and run_bad >= fall:
            healthy = False
        elif not healthy and run_ok >= rise:
            healthy = True
    return healthy


@settings(max_examples=300, deadline=None)
@given(
    start=st.booleans(),
    rise=st.integers(1, 5),
    fall=st.integers(1, 5),
    results=st.lists(st.booleans(), max_size=40),
)
def test_state_matches_a_reference_model(
    start: bool, rise: int, fall: int, results: list[bool]
) -> None:
    s = HealthState(healthy=start, healthy_after=rise, unhealthy_after=fall, now=0.0)
    for i, ok in enumerate(results):
        before = s.healthy
        t = s.record(ok, float(i))
        # a transition is reported exactly when the verdict changed, and says which way
        assert (t is not None) == (before != s.healthy)
        if t is not None:
            assert t is (Transition.BECAME_HEALTHY if s.healthy else Transition.BECAME_UNHEALTHY)
    assert s.healthy == _reference(start, rise, fall, results)


@settings(max_examples=300, deadline=None)
@given(
    interval=st.floats(0.01, 3600),
    jitter=st.floats(0, 0.5),
    seed=st.integers(0, 2**32),
)
def test_delays_stay_within_the_jitter_bounds(interval: float, jitter: float, seed: int) -> None:
    cfg = HealthConfig(interval=interval, timeout=interval, jitter=jitter)
    rng = random.Random(seed)
    d = next_delay(rng, cfg)
    assert interval * (1 - jitter) - 1e-9 <= d <= interval * (1 + jitter) + 1e-9
    f = first_delay(rng, cfg)
    assert 0 <= f <= interval * jitter + 1e-9


def test_jitter_actually_spreads_probes() -> None:
    cfg = HealthConfig(interval=2.0)
    rng = random.Random(7)
    delays = [next_delay(rng, cfg) for _ in range(2000)]
    assert min(delays) < 1.82 and max(delays) > 2.18  # uses most of the +-10 % band
    assert abs(sum(delays) / len(delays) - 2.0) < 0.02  # and centres on the interval


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"HTTP/1.1 200 OK\r\n", 200),
        (b"HTTP/1.0 503 Service Unavailable\r\n", 503),
        (b"HTTP/1.1 204\r\n", 204),
        (b"HTTP/1.1 200 OK\n", 200),
        (b"HTTP/2 200\r\n", None),
        (b"HTTP/1.1 20 OK\r\n", None),
        (b"HTTP/1.1 600 Nope\r\n", None),
        (b"SSH-2.0-OpenSSH\r\n", None),
        (b"HTTP/1.1 200 OK", None),  # no line end: truncated
        (b"", None),
    ],
)
def test_parse_status_line(line: bytes, status: int | None) -> None:
    assert parse_status_line(line) == status


def test_probe_request_bytes() -> None:
    req = probe_request(HealthConfig(path="/healthz?deep=1"), "10.0.0.1:8000")
    assert req.startswith(b"GET /healthz?deep=1 HTTP/1.1\r\nHost: 10.0.0.1:8000\r\n")
    assert b"\r\nConnection: close\r\n" in req and req.endswith(b"\r\n\r\n")
    assert b"Host: api.internal\r\n" in probe_request(HealthConfig(host="api.internal"), "x:1")


# ---------------------------------------------------------------------------------------------
# A real origin that answers as told


class Origin:
    """mode: "200", "500", ... (status to send), "hang", "garbage" or "refuse" (not listening)."""

    def __init__(self) -> None:
        self.mode = "200"
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self._hung: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        self.requests.append(head)
        if self.mode == "hang":
            self._hung.append(writer)
            return
        if self.mode == "garbage":
            writer.write(b"hello there\r\n")
        else:
            writer.write(f"HTTP/1.1 {self.mode} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    async def listen(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def set_mode(self, mode: str) -> None:
        if mode == "refuse" and self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        elif mode != "refuse" and self.server is None:
            await self.listen()
        self.mode = mode

    async def close(self) -> None:
        for w in self._hung:
            w.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    o = Origin()
    await o.listen()
    try:
        yield o
    finally:
        await o.close()


OK = frozenset(range(200, 300))


@pytest.mark.parametrize(
    ("mode", "ok", "detail"),
    [
        ("200", True, "200"),
        ("204", True, "204"),
        ("500", False, "status 500"),
        ("302", False, "status 302"),
        ("hang", False, "timeout"),
        ("garbage", False, "bad status line"),
        ("refuse", False, "connect: ConnectionRefusedError"),
    ],
)
async def test_probe_outcomes(origin: Origin, mode: str, ok: bool, detail: str) -> None:
    await origin.set_mode(mode)
    started = time.monotonic()
    result = await probe("127.0.0.1", origin.port, probe_request(HealthConfig(), "o"), 0.3, OK)
    assert (result.ok, result.detail) == (ok, detail)
    assert time.monotonic() - started < 0.6  # the timeout bounds even a hanging origin


async def test_probe_sends_one_get_with_connection_close(origin: Origin) -> None:
    req = probe_request(HealthConfig(path="/healthz"), f"127.0.0.1:{origin.port}")
    await probe("127.0.0.1", origin.port, req, 0.5, OK)
    (head,) = origin.requests
    assert head.startswith(b"GET /healthz HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{origin.port}\r\n".encode() in head
    assert b"Connection: close\r\n" in head


async def test_expected_statuses_override_2xx(origin: Origin) -> None:
    req = probe_request(HealthConfig(), "o")
    await origin.set_mode("200")
    assert not (await probe("127.0.0.1", origin.port, req, 0.5, frozenset({204}))).ok
    await origin.set_mode("204")
    assert (await probe("127.0.0.1", origin.port, req, 0.5, frozenset({204}))).ok


# ---------------------------------------------------------------------------------------------
# The checker end to end

FAST = HealthConfig(interval=0.1, timeout=0.08, unhealthy_after=3, healthy_after=2, jitter=0.1)


class Log:
    def __init__(self, checker_states: Callable[[], dict[str, HealthState]]) -> None:
        self.events: list[tuple[str, Transition, int, int]] = []
        self._states = checker_states

    def __call__(self, ep: Endpoint, t: Transition) -> None:
        s = self._states()[ep.key]
        self.events.append((ep.key, t, s.failures, s.successes))


def make_checker(
    endpoints: list[Endpoint], cfg: HealthConfig = FAST, **kw: Any
) -> tuple[ActiveHealthChecker, Log]:
    holder: list[ActiveHealthChecker] = []
    log = Log(lambda: holder[0].states)
    checker = ActiveHealthChecker(lambda: list(endpoints), cfg, log, rng=random.Random(1), **kw)
    holder.append(checker)
    return checker, log


async def wait_for(cond: Callable[[], bool], limit: float = 3.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("breakage", ["500", "hang", "refuse"])
async def test_flips_unhealthy_after_failures_and_back_after_successes(
    origin: Origin, breakage: str
) -> None:
    ep = Endpoint("127.0.0.1", origin.port)
    checker, log = make_checker([ep])
    checker.start()
    try:
        await wait_for(lambda: checker.probes >= 2)
        assert ep.healthy and log.events == []
        await origin.set_mode(breakage)
        await wait_for(lambda: not ep.healthy)
        assert log.events == [(ep.key, Transition.BECAME_UNHEALTHY, 3, 0)]
        await origin.set_mode("200")
        await wait_for(lambda: ep.healthy)
        assert log.events[-1] == (ep.key, Transition.BECAME_HEALTHY, 0, 2)
        assert len(log.events) == 2
    finally:
        await checker.stop()


async def test_probing_paces_at_the_interval(origin: Origin) -> None:
    ep = Endpoint("127.0.0.1", origin.port)
    checker, _ = make_checker([ep])
    checker.start()
    await asyncio.sleep(1.0)
    await checker.stop()
    # first probe within 10 ms, then one every 90-110 ms: 9 to 11 probes in one second
    assert 9 <= len(origin.requests) <= 11
    done = len(origin.requests)
    await asyncio.sleep(0.3)
    assert len(origin.requests) == done  # stop() stops probing


async def test_discovered_endpoint_waits_for_healthy_after_successes(origin: Origin) -> None:
    endpoints: list[Endpoint] = []
    checker, log = make_checker(endpoints, initial_healthy=False)
    checker.start()
    try:
        ep = Endpoint("127.0.0.1", origin.port)
        assert ep.healthy  # a fresh Endpoint says healthy...
        endpoints.append(ep)  # discovery publishes it to the cluster and, same tick:
        checker.set_endpoints(endpoints)
        assert not ep.healthy  # ...until the checker has seen it pass: not routable yet
        await wait_for(lambda: ep.healthy)
        assert log.events == [(ep.key, Transition.BECAME_HEALTHY, 0, 2)]
        assert len(origin.requests) >= 2
    finally:
        await checker.stop()


async def test_static_endpoint_starts_healthy_even_when_origin_is_down(origin: Origin) -> None:
    await origin.set_mode("refuse")
    ep = Endpoint("127.0.0.1", origin.port)
    checker, log = make_checker([ep], initial_healthy=True)
    checker.start()
    try:
        assert ep.healthy
        await wait_for(lambda: not ep.healthy)
        assert log.events == [(ep.key, Transition.BECAME_UNHEALTHY, 3, 0)]
    finally:
        await checker.stop()


async def test_endpoints_from_the_getter_are_added_and_removed() -> None:
    a, b = Origin(), Origin()
    await a.listen()
    await b.listen()
    ep_a, ep_b = Endpoint("127.0.0.1", a.port), Endpoint("127.0.0.1", b.port)
    endpoints = [ep_a]
    checker, _ = make_checker(endpoints)
    checker.start()
    try:
        await wait_for(lambda: len(a.requests) >= 1)
        endpoints.append(ep_b)  # discovery adds b; the checker notices within an interval
        await wait_for(lambda: len(b.requests) >= 1)
        endpoints.remove(ep_a)
        await wait_for(lambda: ep_a.key not in checker.states)
        await asyncio.sleep(0.05)
        seen = len(a.requests)
        await asyncio.sleep(0.35)
        assert len(a.requests) == seen  # a removed endpoint is no longer probed
        assert len(b.requests) >= 3
    finally:
        await checker.stop()
        await a.close()
        await b.close()


async def test_same_address_new_object_keeps_its_verdict(origin: Origin) -> None:
    await origin.set_mode("500")
    ep = Endpoint("127.0.0.1", origin.port)
    checker, _ = make_checker([ep])
    checker.start()
    try:
        await wait_for(lambda: not ep.healthy)
        twin = Endpoint("127.0.0.1", origin.port)  # a config reload rebuilt the object
        checker.set_endpoints([twin])
        assert not twin.healthy
    finally:
        await checker.stop()


async def test_without_a_getter_set_endpoints_drives_the_set(origin: Origin) -> None:
    ep = Endpoint("127.0.0.1", origin.port)
    checker = ActiveHealthChecker(None, FAST, lambda e, t: None, initial_healthy=False)
    checker.set_endpoints([ep])  # before start, outside a running probe loop
    assert not ep.healthy
    checker.start()
    try:
        await wait_for(lambda: ep.healthy)
        checker.set_endpoints([])
        seen = len(origin.requests)
        await asyncio.sleep(0.3)
        assert len(origin.requests) <= seen + 1  # at most the probe already in flight
        assert checker.states == {}
    finally:
        await checker.stop()


async def test_a_failing_listener_does_not_stop_probing(origin: Origin) -> None:
    ep = Endpoint("127.0.0.1", origin.port)

    def explode(e: Endpoint, t: Transition) -> None:
        raise RuntimeError("listener bug")

    checker = ActiveHealthChecker(lambda: [ep], FAST, explode, rng=random.Random(2))
    checker.start()
    try:
        await origin.set_mode("500")
        await wait_for(lambda: not ep.healthy)
        await origin.set_mode("200")
        await wait_for(lambda: ep.healthy)
    finally:
        await checker.stop()
