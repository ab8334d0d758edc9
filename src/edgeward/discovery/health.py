"""Active health checks: probe every endpoint of an upstream with an HTTP GET and flip
`Endpoint.healthy` after enough consecutive failures or successes.

Core (sans-I/O):
  `HealthConfig`             the `upstreams.X.health` mapping;
  `HealthState`              one endpoint's verdict and consecutive counters;
                             `record(ok, now)` returns a `Transition` when the verdict flips;
  `next_delay(rng, cfg)`     the jittered wait between two probes of one endpoint;
  `parse_status_line(line)`  the status code of an HTTP/1.x status line, or None.

Shell: `ActiveHealthChecker` runs one asyncio task per endpoint: wait `next_delay`, send one
`GET <path> HTTP/1.1` with `Connection: close` over `asyncio.open_connection`, read the status
line, close. Connect error, timeout, malformed status line or a status outside the expected
set is a failure. A probe never reuses a connection, so a probe tests what a new upstream
connection would see (Envoy's `reuse_connection: false`, HAProxy's default).

Verdict rules (HAProxy's rise/fall): a healthy endpoint turns unhealthy after
`unhealthy_after` consecutive failures; an unhealthy one turns healthy after `healthy_after`
consecutive successes. A result of the other kind resets the counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import re
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from edgeward.balance.endpoint import Endpoint
from edgeward.grpc.health import grpc_probe
from edgeward.values import Duration, doc

log = logging.getLogger("edgeward.discovery.health")

# HAProxy's `inter` default is 2 s (nginx-plus uses 5 s, Envoy has no default): detection in
# about unhealthy_after * interval = 6 s at a cost of one tiny request per endpoint every 2 s.
DEFAULT_INTERVAL = 2.0
# Envoy's examples and most charts use 1 s; a health endpoint slower than that is itself a sign
# of trouble. Must not exceed `interval` (probes of one endpoint never overlap).
DEFAULT_TIMEOUT = 1.0
# HAProxy `fall 3`: one lost packet or GC pause must not eject an endpoint.
DEFAULT_UNHEALTHY_AFTER = 3
# HAProxy `rise 2`: a flapping endpoint must pass twice in a row before it takes traffic.
DEFAULT_HEALTHY_AFTER = 2
# nginx `health_check uri=` and HAProxy `option httpchk` both default to "/": the one path every
# HTTP origin serves. Set a dedicated path such as /healthz when the service has one.
DEFAULT_PATH = "/"
# Envoy's interval_jitter_percent (HAProxy spreads checks with `spread-checks`): +-10 % keeps
# probes of many gateways and endpoints from marching in lock-step.
DEFAULT_JITTER = 0.1
# Envoy and nginx-plus treat a 2xx (nginx also 3xx) as healthy; we take any 2xx.
DEFAULT_OK_STATUSES = range(200, 300)
# An HTTP GET unless asked: nginx-plus, HAProxy and Envoy all default to HTTP checks.
HealthKind = Literal["http", "grpc"]
DEFAULT_KIND: HealthKind = "http"
# Envoy grpc_health_check service_name default "": the server's overall health.
DEFAULT_GRPC_SERVICE = ""

# Longest status line we read; a real one is ~20 bytes ("HTTP/1.1 200 OK\r\n").
MAX_STATUS_LINE = 1024

_STATUS_LINE_RE = re.compile(rb"^HTTP/1\.[01] ([1-5][0-9][0-9])(?: [^\r\n]*)?\r?\n$")
_TOKEN_RE = re.compile(r"^[!-~]+$")  # visible ASCII, no space, CR or LF (no header injection)


@dataclass(frozen=True, kw_only=True)
class HealthConfig:
    """`upstreams.<name>.health`: how to probe each endpoint of the upstream."""

    kind: HealthKind = field(default=DEFAULT_KIND, metadata=doc(
        "http: a GET of `path`; grpc: a grpc.health.v1.Health/Check call over HTTP/2 "
        "(Envoy grpc_health_check), healthy when it answers SERVING."))
    service: str = field(default=DEFAULT_GRPC_SERVICE, metadata=doc(
        "kind grpc: the service name asked about; \"\" asks about the whole server."))
    path: str = field(default=DEFAULT_PATH, metadata=doc(
        "Path (with optional query) of the GET probe; nginx and HAProxy default to '/'."))
    interval: Duration = field(default=DEFAULT_INTERVAL, metadata=doc(
        "Time between probes of one endpoint (before jitter); HAProxy's inter 2s."))
    timeout: Duration = field(default=DEFAULT_TIMEOUT, metadata=doc(
        "Connect + response status line must arrive within this; at most `interval`."))
    unhealthy_after: int = field(default=DEFAULT_UNHEALTHY_AFTER, metadata=doc(
        "Consecutive failures that mark a healthy endpoint unhealthy; HAProxy's fall 3."))
    healthy_after: int = field(default=DEFAULT_HEALTHY_AFTER, metadata=doc(
        "Consecutive successes that mark an unhealthy endpoint healthy; HAProxy's rise 2."))
    expected_statuses: list[int] | None = field(default=None, metadata=doc(
        "Status codes that count as success; null means any 2xx (Envoy, nginx-plus)."))
    host: str | None = field(default=None, metadata=doc(
        "Host header of the probe; null sends the endpoint's own HOST:PORT."))
    jitter: float = field(default=DEFAULT_JITTER, metadata=doc(
        "Each wait is interval * (1 +- jitter), uniformly; Envoy's interval_jitter_percent."))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.path.startswith("/") or not _TOKEN_RE.match(self.path):
            problems.append(("path", f"must start with / and contain no spaces or control "
                                     f"characters, got {self.path!r}"))
        if not self.interval > 0:
            problems.append(("interval", f"must be > 0, got {self.interval!r}"))
        if not self.timeout > 0:
            problems.append(("timeout", f"must be > 0, got {self.timeout!r}"))
        elif self.interval > 0 and self.timeout > self.interval:
            problems.append(("timeout", f"must not exceed interval ({self.interval}s), "
                                        f"got {self.timeout}s"))
        if self.unhealthy_after < 1:
            problems.append(("unhealthy_after", f"must be >= 1, got {self.unhealthy_after}"))
        if self.healthy_after < 1:
            problems.append(("healthy_after", f"must be >= 1, got {self.healthy_after}"))
        if self.expected_statuses is not None:
            if not self.expected_statuses:
                problems.append(("expected_statuses", "must list at least one status, got []"))
            for s in self.expected_statuses:
                if not 100 <= s <= 599:
                    problems.append(("expected_statuses", f"must be 100-599, got {s}"))
        if self.host is not None and not _TOKEN_RE.match(self.host):
            problems.append(("host", f"must be a host name without spaces or control "
                                     f"characters, got {self.host!r}"))
        if not 0.0 <= self.jitter <= 0.5:
            problems.append(("jitter", f"must be between 0 and 0.5, got {self.jitter!r}"))
        return problems

    def validate(self) -> None:
        """Raise ValueError naming every bad field (for configs built in code, not YAML)."""
        problems = self.check()
        if problems:
            raise ValueError("; ".join(f"{key}: {reason}" for key, reason in problems))

    def ok_statuses(self) -> frozenset[int]:
        if self.expected_statuses is None:
            return frozenset(DEFAULT_OK_STATUSES)
        return frozenset(self.expected_statuses)


# -- sans-I/O core ------------------------------------------------------------------------


class Transition(enum.Enum):
    BECAME_HEALTHY = "healthy"
    BECAME_UNHEALTHY = "unhealthy"


class HealthState:
    """One endpoint's verdict and the run of identical probe results that may flip it."""

    __slots__ = ("healthy", "successes", "failures", "healthy_after", "unhealthy_after",
                 "changed_at", "last_detail")

    def __init__(self, *, healthy: bool, healthy_after: int, unhealthy_after: int,
                 now: float) -> None:
        if healthy_after < 1 or unhealthy_after < 1:
            raise ValueError(f"healthy_after and unhealthy_after must be >= 1, "
                             f"got {healthy_after} and {unhealthy_after}")
        self.healthy = healthy
        self.successes = 0  # consecutive, since the last failure
        self.failures = 0  # consecutive, since the last success
        self.healthy_after = healthy_after
        self.unhealthy_after = unhealthy_after
        self.changed_at = now
        self.last_detail = ""

    def record(self, ok: bool, now: float, detail: str = "") -> Transition | None:
        """Count one probe result; return the transition if the verdict flipped."""
        self.last_detail = detail
        if ok:
            self.successes += 1
            self.failures = 0
            if not self.healthy and self.successes >= self.healthy_after:
                self.healthy = True
                self.changed_at = now
                return Transition.BECAME_HEALTHY
        else:
            self.failures += 1
            self.successes = 0
            if self.healthy and self.failures >= self.unhealthy_after:
                self.healthy = False
                self.changed_at = now
                return Transition.BECAME_UNHEALTHY
        return None

    def __repr__(self) -> str:
        verdict = "healthy" if self.healthy else "unhealthy"
        return f"<HealthState {verdict} ok={self.successes} fail={self.failures}>"


def next_delay(rng: random.Random, cfg: HealthConfig) -> float:
    """Wait before the next probe: interval * (1 + u), u uniform in [-jitter, +jitter]."""
    return cfg.interval * (1.0 + rng.uniform(-cfg.jitter, cfg.jitter))


def first_delay(rng: random.Random, cfg: HealthConfig) -> float:
    """Wait before an endpoint's first probe: uniform in [0, interval * jitter], so a new
    endpoint is checked almost at once but a whole fleet does not start in the same tick
    (Envoy's initial_jitter)."""
    return rng.uniform(0.0, cfg.interval * cfg.jitter)


def parse_status_line(line: bytes) -> int | None:
    """`b"HTTP/1.1 200 OK\\r\\n"` -> 200; anything not an HTTP/1.x status line -> None."""
    m = _STATUS_LINE_RE.match(line)
    return int(m.group(1)) if m else None


def probe_request(cfg: HealthConfig, endpoint_key: str) -> bytes:
    """The exact bytes of one probe; computed once per endpoint."""
    host = cfg.host if cfg.host is not None else endpoint_key
    return (f"GET {cfg.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: edgeward-health\r\n"
            f"Accept: */*\r\nConnection: close\r\n\r\n").encode("ascii")


# -- I/O shell ----------------------------------------------------------------------------


# The client context and server name (None: the endpoint's host) of a TLS upstream.
ProbeTls = tuple[ssl.SSLContext, str | None]


class ProbeResult(NamedTuple):
    ok: bool
    detail: str  # "200", "status 503", "timeout", "connect: ConnectionRefusedError", ...


async def probe(host: str, port: int, request: bytes, timeout: float,
                ok_statuses: frozenset[int], tls: ProbeTls | None = None) -> ProbeResult:
    """One HTTP probe over a fresh connection (over TLS with `tls`: the upstream's client
    context and SNI, so a probe verifies what requests verify); never raises for network
    trouble."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            try:
                if tls is None:
                    reader, writer = await asyncio.open_connection(
                        host, port, limit=MAX_STATUS_LINE)
                else:
                    reader, writer = await asyncio.open_connection(
                        host, port, limit=MAX_STATUS_LINE, ssl=tls[0],
                        server_hostname=tls[1] or host)
            except OSError as exc:
                return ProbeResult(False, f"connect: {type(exc).__name__}")
            writer.write(request)
            await writer.drain()
            line = await reader.readline()
    except TimeoutError:
        return ProbeResult(False, "timeout")
    except (OSError, ValueError, asyncio.LimitOverrunError) as exc:
        return ProbeResult(False, f"io: {type(exc).__name__}")
    finally:
        if writer is not None:
            writer.close()
    status = parse_status_line(line)
    if status is None:
        return ProbeResult(False, "bad status line" if line else "closed without response")
    if status not in ok_statuses:
        return ProbeResult(False, f"status {status}")
    return ProbeResult(True, str(status))


EndpointsGetter = Callable[[], Iterable[Endpoint]]
OnTransition = Callable[[Endpoint, Transition], None]


class ActiveHealthChecker:
    """Probes the endpoints of one upstream and keeps `Endpoint.healthy` up to date.

    endpoints_getter() (the cluster's current endpoints) is the source of truth: it is read
    when the checker starts and then once per interval, so endpoints added or removed by
    discovery are picked up without a call. `set_endpoints` applies a list at once; call it
    in the same tick that publishes new endpoints, so a discovered endpoint is never routable
    before its initial verdict is set. Pass endpoints_getter=None to drive the set only
    through `set_endpoints`.
    initial_healthy: the verdict a newly seen endpoint starts with. True for static targets
    (serve at once, as nginx and HAProxy do); False for discovered ones, which then take
    traffic only after `healthy_after` successful probes. An endpoint already known keeps its
    state across calls.
    on_transition(endpoint, transition) is called after `endpoint.healthy` changed.
    """

    def __init__(
        self,
        endpoints_getter: EndpointsGetter | None,
        cfg: HealthConfig,
        on_transition: OnTransition,
        *,
        initial_healthy: bool = True,
        rng: random.Random | None = None,
        name: str = "",
        tls: ProbeTls | None = None,
    ) -> None:
        cfg.validate()
        self.cfg = cfg
        self.tls = tls
        self.name = name
        self.initial_healthy = initial_healthy
        self._getter = endpoints_getter
        self._on_transition = on_transition
        self._rng = rng if rng is not None else random.Random()
        self._ok = cfg.ok_statuses()
        self.states: dict[str, HealthState] = {}
        self._endpoints: dict[str, Endpoint] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self.probes = 0  # probes completed, for metrics
        self.probe_failures = 0

    # -- endpoint set ---------------------------------------------------------------------

    def set_endpoints(self, endpoints: Iterable[Endpoint],
                      *, initial_healthy: bool | None = None) -> None:
        """Make `endpoints` the probed set: new ones get a state (and `healthy` set to the
        initial verdict at once), removed ones stop being probed. Synchronous."""
        start = self.initial_healthy if initial_healthy is None else initial_healthy
        now = _now()
        wanted = {ep.key: ep for ep in endpoints}
        for key in list(self._endpoints):
            if key not in wanted:
                self._forget(key)
        for key, ep in wanted.items():
            known = self._endpoints.get(key)
            if known is None:
                state = HealthState(healthy=start, healthy_after=self.cfg.healthy_after,
                                    unhealthy_after=self.cfg.unhealthy_after, now=now)
                self.states[key] = state
                ep.healthy = start
            elif known is not ep:
                ep.healthy = self.states[key].healthy  # same address, new object: keep verdict
            self._endpoints[key] = ep
            if self._supervisor is not None and key not in self._tasks:
                self._spawn(key)

    def _forget(self, key: str) -> None:
        self._endpoints.pop(key, None)
        self.states.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    # -- probing --------------------------------------------------------------------------

    def _spawn(self, key: str) -> None:
        self._tasks[key] = asyncio.get_running_loop().create_task(
            self._probe_loop(key), name=f"health:{self.name}:{key}")

    async def _probe_loop(self, key: str) -> None:
        request = probe_request(self.cfg, key)
        await asyncio.sleep(first_delay(self._rng, self.cfg))
        while True:
            ep = self._endpoints.get(key)
            if ep is None:
                return
            started = _now()
            if self.cfg.kind == "grpc":
                ok, detail = await grpc_probe(ep.host, ep.port, self.cfg.host or key,
                                              self.cfg.service, self.cfg.timeout, self.tls)
                result = ProbeResult(ok, detail)
            else:
                result = await probe(ep.host, ep.port, request, self.cfg.timeout, self._ok,
                                     self.tls)
            self._apply(key, result)
            spent = _now() - started
            await asyncio.sleep(max(0.0, next_delay(self._rng, self.cfg) - spent))

    def _apply(self, key: str, result: ProbeResult) -> None:
        state, ep = self.states.get(key), self._endpoints.get(key)
        if state is None or ep is None:  # removed while the probe was in flight
            return
        self.probes += 1
        if not result.ok:
            self.probe_failures += 1
        transition = state.record(result.ok, _now(), result.detail)
        if transition is None:
            return
        ep.healthy = state.healthy
        log.info("health %s %s: %s (%s)", self.name, key, transition.value, result.detail)
        try:
            self._on_transition(ep, transition)
        except Exception:  # a faulty listener must not stop the probes of this endpoint
            log.exception("health %s %s: on_transition failed", self.name, key)

    async def _supervise(self) -> None:
        while True:
            if self._getter is not None:
                self.set_endpoints(self._getter())
            await asyncio.sleep(self.cfg.interval)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Begin probing (needs a running loop). Reads endpoints_getter at once."""
        if self._supervisor is not None:
            return
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(), name=f"health:{self.name}")
        for key in self._endpoints:
            if key not in self._tasks:
                self._spawn(key)
        if self._getter is not None:
            self.set_endpoints(self._getter())

    async def stop(self) -> None:
        """Stop every probe and wait for them; verdicts stay as they are."""
        tasks = list(self._tasks.values())
        if self._supervisor is not None:
            tasks.append(self._supervisor)
        self._supervisor = None
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def __repr__(self) -> str:
        bad = sum(1 for s in self.states.values() if not s.healthy)
        return (f"<ActiveHealthChecker {self.name} endpoints={len(self.states)} "
                f"unhealthy={bad} running={self._supervisor is not None}>")


def _now() -> float:
    return time.monotonic()  # the shell's clock; the core only receives `now`
