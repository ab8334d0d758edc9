"""etcd in the shell: endpoints list with reconnect backoff, and the service registry watcher.

Registry layout (written by `discovery.register`, read here):

    /edgeward/services/NAME/HOST:PORT  ->  {"address": "HOST:PORT", "weight": W}   (under a lease)

with optional `"zone": "Z"` and `"labels": {"k": "v"}`; an entry with either is read as
(host, port, weight, zone, labels), one without as (host, port, weight).

`EtcdRegistryWatcher` reads the prefix once, then watches it from the revision that read
returned, so no change between the read and the watch is lost. When the stream breaks (etcd
restarted, network gone) it keeps the last list (endpoints keep being served), reconnects
with capped exponential backoff, rotating through the configured endpoints, and resumes the
watch from the last revision it saw; only if etcd compacted that revision away does it read
the prefix again. `on_update` always receives the full current list, once per etcd response
(a transaction that changes three keys gives one update, not three).

`Backoff` is the only algorithm here and it is sans-I/O: it returns delays, the caller sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import aetcd
import aetcd.exceptions

from edgeward.balance.endpoint import MAX_WEIGHT
from edgeward.discovery.etcd_client import Client, EtcdAccess
from edgeward.tls.config import StoreTlsConfig
from edgeward.values import Address, Duration, doc

log = logging.getLogger(__name__)

T = TypeVar("T")
# A registry member: (host, port, weight), or with locality (host, port, weight, zone, labels).
Member = tuple[str, int, int] | tuple[str, int, int, str, dict[str, str]]

# etcd's own default client URL (`--listen-client-urls http://localhost:2379`).
DEFAULT_ETCD_ENDPOINT: tuple[str, int] = ("127.0.0.1", 2379)
# Per-request deadline. etcdctl's --command-timeout default is 5s; a gateway start or a
# reconnect that waits longer than that for a healthy etcd is better reported than hidden.
DEFAULT_ETCD_TIMEOUT = 5.0
# Reconnect backoff: first retry after 100 ms (gRPC's connection backoff uses 1 s base, but a
# restarted local etcd is back within a second, and the watch should resume quickly), doubled
# per failure, capped at 5 s (etcd clientv3's watch retry waits grow to a few seconds; Envoy's
# xDS gRPC stream retry caps at a few seconds too) so that a recovered etcd is noticed fast.
DEFAULT_BACKOFF_BASE = 0.1
DEFAULT_BACKOFF_CAP = 5.0
# Where services register; one key per instance below /edgeward/services/NAME/.
SERVICES_PREFIX = "/edgeward/services/"
# gRPC keepalive on the channel so a silently dead etcd (partition, not a closed socket) breaks
# the watch stream: ping after 10 s idle, give up after 5 s more. etcd refuses pings more
# often than its --grpc-keepalive-min-time (5 s default), so 10 s stays within its policy.
GRPC_KEEPALIVE_OPTIONS: dict[str, Any] = {
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    "grpc.keepalive_permit_without_calls": 1,
}

# What a broken or refused etcd connection surfaces as, through aetcd and gRPC.
ETCD_ERRORS: tuple[type[Exception], ...] = (
    aetcd.exceptions.ClientError,
    OSError,
    asyncio.TimeoutError,
)
# The same plus "no endpoint answered" (ConnectionError is an OSError, listed for clarity).
RETRYABLE = ETCD_ERRORS + (ConnectionError,)


def _default_endpoints() -> list[tuple[str, int]]:
    return [DEFAULT_ETCD_ENDPOINT]


@dataclass(frozen=True, kw_only=True)
class EtcdConfig:
    """Top-level `etcd:` block: where the etcd cluster is, shared by discovery and config."""

    endpoints: list[Address] = field(
        default_factory=_default_endpoints,
        metadata=doc("etcd client endpoints, tried in order; etcd's default is 127.0.0.1:2379"),
    )
    timeout: Duration = field(
        default=DEFAULT_ETCD_TIMEOUT,
        metadata=doc("deadline of each etcd request; 5s like etcdctl --command-timeout"),
    )
    consumers_prefix: str | None = field(
        default=None,
        metadata=doc("read consumers from the keys under this prefix (e.g. "
                     "/edgeward/consumers/; each value a consumer in YAML or JSON) and follow "
                     "them; null: consumers come from the file only"),
    )
    username: str | None = field(
        default=None,
        metadata=doc("etcd user (etcd's auth API: a token per connection, fetched again when "
                     "it expires); etcdctl --user"))
    password: str | None = field(
        default=None, repr=False, metadata=doc("password of username; never logged or shown"))
    tls: StoreTlsConfig | None = field(
        default=None,
        metadata=doc("TLS to every endpoint: {ca, client_cert, client_key}; etcdctl --cacert, "
                     "--cert, --key"))

    @property
    def access(self) -> EtcdAccess:
        return EtcdAccess(self.username, self.password, self.tls)

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if (self.username is None) != (self.password is None):
            problems.append(("password" if self.password is None else "username",
                             "username and password go together"))
        if self.password is not None and not self.password:
            problems.append(("password", "must not be empty"))
        if self.tls is not None and not self.tls.verify:
            problems.append(("tls.verify", "false is not supported for etcd (the gRPC client "
                                           "always verifies); give the CA in tls.ca"))
        prefix = self.consumers_prefix
        if prefix is not None and (not prefix.startswith("/") or not prefix.endswith("/")):
            problems.append(("consumers_prefix", "must start and end with /"))
        if not self.endpoints:
            problems.append(("endpoints", "at least one HOST:PORT is needed"))
        if self.timeout <= 0:
            problems.append(("timeout", f"must be > 0, got {self.timeout}"))
        return problems


class EtcdUnavailable(ConnectionError):
    """No configured etcd endpoint answered; the message names every endpoint tried."""

    def __init__(self, endpoints: list[tuple[str, int]], reason: str) -> None:
        self.endpoints = endpoints
        names = ", ".join(format_endpoint(e) for e in endpoints)
        super().__init__(f"etcd unreachable at {names}: {reason}")


def format_endpoint(endpoint: tuple[str, int]) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Backoff:
    """Capped exponential backoff with jitter (sans-I/O: returns delays, never sleeps).

    Delay n (from 0) is drawn uniformly from [d/2, d] with d = min(cap, base * 2**n): the
    "equal jitter" of the AWS architecture note, so a fleet of gateways that lost the same etcd
    does not reconnect in lockstep, while the wait never drops below half the nominal step.
    """

    __slots__ = ("base", "cap", "_rng", "_attempt")

    def __init__(
        self,
        base: float = DEFAULT_BACKOFF_BASE,
        cap: float = DEFAULT_BACKOFF_CAP,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0:
            raise ValueError(f"backoff base must be > 0, got {base}")
        if cap < base:
            raise ValueError(f"backoff cap must be >= base ({base}), got {cap}")
        self.base = base
        self.cap = cap
        self._rng = rng if rng is not None else random.Random()
        self._attempt = 0

    def next_delay(self) -> float:
        nominal = min(self.cap, self.base * (2.0 ** min(self._attempt, 62)))
        self._attempt += 1
        return nominal / 2 + self._rng.random() * nominal / 2

    def reset(self) -> None:
        self._attempt = 0


class EtcdConnection:
    """One aetcd client at a time over a list of endpoints; a failed call moves to the next.

    `call(op)` runs `op(client)`; on a connection error it closes that client and tries the
    next endpoint, and when every endpoint failed once it raises EtcdUnavailable. `reset()`
    drops the current client (after a broken watch stream) so the next call reconnects.
    """

    def __init__(self, endpoints: list[tuple[str, int]], timeout: float,
                 access: EtcdAccess | None = None) -> None:
        if not endpoints:
            raise ValueError("etcd endpoints must not be empty")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.access = access if access is not None else EtcdAccess()
        self._index = 0
        self._client: Client | None = None

    @property
    def label(self) -> str:
        return ",".join(format_endpoint(e) for e in self.endpoints)

    @property
    def current(self) -> tuple[str, int]:
        return self.endpoints[self._index]

    async def client(self) -> Client:
        if self._client is None:
            host, port = self.current
            client = Client(host, port, timeout=self.timeout,
                            options=dict(GRPC_KEEPALIVE_OPTIONS), access=self.access)
            await client.connect()
            self._client = client
        return self._client

    async def call(self, op: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        last = "no endpoint tried"
        for _ in range(len(self.endpoints)):
            try:
                client = await self.client()
                try:
                    return await op(client)
                except aetcd.exceptions.UnauthenticatedError:
                    if self.access.username is None:
                        raise
                    await client.reauthenticate()     # the token expired: once more
                    return await op(client)
            except ETCD_ERRORS as exc:
                last = f"{format_endpoint(self.current)}: {_describe(exc)}"
                await self.reset(rotate=True)
        raise EtcdUnavailable(self.endpoints, last)

    async def reset(self, rotate: bool = False) -> None:
        client, self._client = self._client, None
        if rotate:
            self._index = (self._index + 1) % len(self.endpoints)
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), self.timeout)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def parse_registry_value(key: bytes, value: bytes) -> Member | None:
    """Registry key/value -> (host, port, weight[, zone, labels]); None (and a warning) if
    malformed."""
    from edgeward.values import parse_address

    try:
        data = json.loads(value)
        host, port = parse_address(data["address"])
        weight = data.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise ValueError(f"weight must be an integer >= 1, got {weight!r}")
        zone = data.get("zone", "")
        labels = data.get("labels", {})
        if not isinstance(zone, str):
            raise ValueError(f"zone must be a string, got {zone!r}")
        if not isinstance(labels, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise ValueError(f"labels must map strings to strings, got {labels!r}")
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring malformed registry entry %r: %s", key, exc)
        return None
    if weight > MAX_WEIGHT:
        log.warning("registry entry %r: weight %d clamped to %d (the largest weight)",
                    key, weight, MAX_WEIGHT)
        weight = MAX_WEIGHT
    if zone or labels:
        return host, port, weight, zone, labels
    return host, port, weight


class EtcdPrefixWatcher(Generic[T]):
    """Keeps every entry under one etcd prefix, pushing the full list to `on_update` after
    each change (`parse(key, value)` turns a value into an entry; None skips it).

    `await start()` reads the current entries (raising EtcdUnavailable if etcd cannot be
    reached at all), delivers them once, and starts the background watch task; `await
    close()` stops it.
    """

    def __init__(
        self,
        endpoints: list[tuple[str, int]],
        prefix: bytes,
        on_update: Callable[[list[T]], None],
        *,
        timeout: float = DEFAULT_ETCD_TIMEOUT,
        backoff: Backoff | None = None,
        access: EtcdAccess | None = None,
    ) -> None:
        self.prefix = prefix
        self._on_update = on_update
        self._conn = EtcdConnection(endpoints, timeout, access)
        self._backoff = backoff if backoff is not None else Backoff()
        self._entries: dict[bytes, T] = {}
        self._revision = 0
        self._task: asyncio.Task[None] | None = None
        self._flush_pending = False
        self._closed = False

    def parse(self, key: bytes, value: bytes) -> T | None:
        raise NotImplementedError

    @property
    def entries(self) -> list[T]:
        """The current entries, sorted by key (a stable order)."""
        return [self._entries[k] for k in sorted(self._entries)]

    @property
    def revision(self) -> int:
        return self._revision

    async def start(self) -> None:
        await self._resync()
        self._deliver()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def retry_in_background(self) -> None:
        """After a failed `start`: keep trying (read, then watch) in the background."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run(resync=True))

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._conn.reset()

    async def _resync(self) -> None:
        prefix = self.prefix
        result = await self._conn.call(lambda c: c.get_prefix(prefix))
        entries: dict[bytes, T] = {}
        for kv in result.kvs:
            parsed = self.parse(kv.key, kv.value)
            if parsed is not None:
                entries[kv.key] = parsed
        self._entries = entries
        self._revision = result.header.revision

    async def _run(self, resync: bool = False) -> None:
        first = resync
        while not self._closed:
            try:
                if resync:
                    before = self.entries
                    await self._resync()
                    resync = False
                    if self.entries != before or first:
                        first = False
                        self._deliver()
                await self._watch()
            except aetcd.exceptions.RevisionCompactedError as exc:
                log.warning("etcd compacted past revision %d (%s); re-reading %s",
                            self._revision, exc, self.prefix.decode())
                resync = True
            except RETRYABLE as exc:
                delay = self._backoff.next_delay()
                log.warning("etcd watch on %s lost (%s); keeping %d entries, retry in %.2fs",
                            self.prefix.decode(), _describe(exc), len(self._entries), delay)
                await self._conn.reset(rotate=True)
                await asyncio.sleep(delay)
                resync = resync or first

    async def _watch(self) -> None:
        client = await self._conn.client()
        watch = await client.watch_prefix(self.prefix, start_revision=self._revision + 1)
        self._backoff.reset()
        try:
            async for event in watch:
                self._apply(event)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watch.cancel(), self._conn.timeout)

    def _apply(self, event: Any) -> None:
        kv = event.kv
        if event.kind == aetcd.rtypes.EventKind.PUT:
            parsed = self.parse(kv.key, kv.value)
            if parsed is None:
                self._entries.pop(kv.key, None)
            else:
                self._entries[kv.key] = parsed
        else:
            self._entries.pop(kv.key, None)
        self._revision = max(self._revision, kv.mod_revision)
        # aetcd hands over the events of one watch response back to back without yielding to
        # the loop, so a flush scheduled with call_soon runs once per response.
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if not self._closed:
            self._deliver()

    def _deliver(self) -> None:
        try:
            self._on_update(self.entries)
        except Exception:
            log.exception("on_update callback failed for %s", self.prefix.decode())


class EtcdRegistryWatcher(EtcdPrefixWatcher[Member]):
    """Keeps the endpoint list of one registered service, pushing every change to `on_update`
    (see EtcdPrefixWatcher)."""

    def __init__(
        self,
        endpoints: list[tuple[str, int]],
        service: str,
        on_update: Callable[[list[Member]], None],
        *,
        timeout: float = DEFAULT_ETCD_TIMEOUT,
        backoff: Backoff | None = None,
        prefix: str = SERVICES_PREFIX,
        access: EtcdAccess | None = None,
    ) -> None:
        if not service or "/" in service:
            raise ValueError(f"service name must be non-empty without '/', got {service!r}")
        self.service = service
        super().__init__(endpoints, f"{prefix.rstrip('/')}/{service}/".encode(), on_update,
                         timeout=timeout, backoff=backoff, access=access)

    def parse(self, key: bytes, value: bytes) -> Member | None:
        return parse_registry_value(key, value)

    @property
    def endpoints(self) -> list[Member]:
        """The current list, sorted by key (stable order for balancers and tests)."""
        return self.entries

    async def __aenter__(self) -> EtcdRegistryWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
