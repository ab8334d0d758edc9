"""Register a service instance in etcd for as long as it runs (the register side of discovery).

    async with Registration([("127.0.0.1", 2379)], "orders", ("10.0.0.7", 8000), weight=2):
        await serve_forever()

puts `/edgeward/services/orders/10.0.0.7:8000 = {"address": "10.0.0.7:8000", "weight": 2}`
(plus `"zone": Z` and `"labels": {...}` when given: `--zone Z --label k=v`)
under a lease of `ttl` seconds and refreshes the lease every ttl/3 (the ratio etcd's own
clientv3 KeepAlive and Consul's TTL checks use: two refreshes may be lost before expiry).
Closing revokes the lease, so the key disappears at once; a process that dies without closing
disappears when the lease expires. If etcd forgets the lease (restarted from a snapshot,
or the refreshes could not reach it for a whole TTL) the instance is registered again with a
new lease as soon as etcd answers.

`main(argv)` is the `edgeward register` command: registers, stays in the foreground, and on
SIGTERM or SIGINT deregisters and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sys

from edgeward.balance.endpoint import MAX_WEIGHT
from edgeward.discovery.etcd import (
    DEFAULT_ETCD_TIMEOUT,
    RETRYABLE,
    SERVICES_PREFIX,
    Backoff,
    EtcdConnection,
    EtcdUnavailable,
    format_endpoint,
)
from edgeward.discovery.etcd_client import EtcdAccess, access_from_env
from edgeward.values import parse_address, parse_duration

log = logging.getLogger(__name__)

# 10 s like Consul's common TTL checks and etcd's `etcdctl lease grant` examples: a crashed
# instance leaves the pool within 10 s, while three keepalives fit in that time.
DEFAULT_TTL = 10.0
# etcd rounds a lease TTL up to its minimum (1.5 x election timeout = 1.5 s by default);
# one second is the smallest TTL the API accepts at all.
MIN_TTL = 1.0
# Refresh the lease at ttl/3 (see the module note).
KEEPALIVE_FRACTION = 1 / 3


class Registration:
    """One service instance registered under a lease; an async context manager."""

    def __init__(
        self,
        endpoints: list[tuple[str, int]],
        service: str,
        address: tuple[str, int],
        *,
        weight: int = 1,
        zone: str = "",
        labels: dict[str, str] | None = None,
        ttl: float = DEFAULT_TTL,
        timeout: float = DEFAULT_ETCD_TIMEOUT,
        backoff: Backoff | None = None,
        prefix: str = SERVICES_PREFIX,
        access: EtcdAccess | None = None,
    ) -> None:
        if not service or "/" in service:
            raise ValueError(f"service name must be non-empty without '/', got {service!r}")
        if isinstance(weight, bool) or not 1 <= weight <= MAX_WEIGHT:
            raise ValueError(f"weight must be an integer from 1 to {MAX_WEIGHT}, "
                             f"got {weight!r}")
        if ttl < MIN_TTL:
            raise ValueError(f"ttl must be >= {MIN_TTL:g}s, got {ttl:g}s")
        name = format_endpoint(address)
        self.key = f"{prefix.rstrip('/')}/{service}/{name}".encode()
        value: dict[str, object] = {"address": name, "weight": weight}
        if zone:
            value["zone"] = zone
        if labels:
            value["labels"] = dict(labels)
        self.value = json.dumps(value).encode()
        self.ttl = ttl
        self._lease_ttl = max(1, math.ceil(ttl))
        self._conn = EtcdConnection(endpoints, timeout, access)
        self._backoff = backoff if backoff is not None else Backoff()
        self.lease_id: int | None = None
        self.registrations = 0  # how many times the key was put (1 + re-registrations)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register now; raises EtcdUnavailable if no endpoint answers."""
        await self._register()
        self._task = asyncio.get_running_loop().create_task(self._keepalive())

    async def close(self) -> None:
        """Stop refreshing and revoke the lease so the key is gone immediately (best effort)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        lease_id, self.lease_id = self.lease_id, None
        if lease_id is not None:
            try:
                await self._conn.call(lambda c: c.revoke_lease(lease_id))
            except RETRYABLE as exc:
                log.warning("could not revoke lease of %s (%s); it expires in %ds",
                            self.key.decode(), exc, self._lease_ttl)
        await self._conn.reset()

    async def __aenter__(self) -> Registration:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _register(self) -> None:
        lease = await self._conn.call(lambda c: c.lease(self._lease_ttl))
        key, value = self.key, self.value
        await self._conn.call(lambda c: c.put(key, value, lease=lease.id))
        self.lease_id = lease.id
        self.registrations += 1
        log.info("registered %s (lease %x, ttl %ds)", key.decode(), lease.id, self._lease_ttl)

    async def _keepalive(self) -> None:
        interval = self.ttl * KEEPALIVE_FRACTION
        delay = interval
        while True:
            await asyncio.sleep(delay)
            try:
                if self.lease_id is None or not await self._refresh(self.lease_id):
                    log.warning("lease of %s lost; registering again", self.key.decode())
                    self.lease_id = None
                    await self._register()
                self._backoff.reset()
                delay = interval
            except RETRYABLE as exc:
                # Retry sooner than the interval (capped by it) so a short outage does not
                # cost the lease.
                delay = min(interval, self._backoff.next_delay())
                log.warning("lease refresh of %s failed (%s); retry in %.2fs",
                            self.key.decode(), exc, delay)

    async def _refresh(self, lease_id: int) -> bool:
        """True if etcd still has the lease (the keepalive answer carries TTL 0 if not)."""
        reply = await self._conn.call(lambda c: c.refresh_lease(lease_id))
        return reply is not None and int(reply.TTL) > 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeward register",
        description="Register HOST:PORT as an instance of a service in etcd until stopped.",
    )
    p.add_argument("--etcd", required=True, action="append", metavar="HOST:PORT",
                   help="etcd endpoint; repeat or comma-separate for several")
    p.add_argument("--service", required=True, help="service name (upstream discovery: etcd)")
    p.add_argument("--address", required=True, metavar="HOST:PORT",
                   help="address the gateway should send traffic to")
    p.add_argument("--weight", type=int, default=1,
                   help=f"balancing weight, 1..{MAX_WEIGHT} (default 1)")
    p.add_argument("--zone", default="", help="the instance's zone (zone-aware routing)")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                   help="a label for subsets; repeat for several")
    p.add_argument("--ttl", default=f"{DEFAULT_TTL:g}s",
                   help=f"lease TTL, e.g. 10s (default {DEFAULT_TTL:g}s)")
    p.add_argument("--timeout", default=f"{DEFAULT_ETCD_TIMEOUT:g}s",
                   help=f"etcd request deadline (default {DEFAULT_ETCD_TIMEOUT:g}s)")
    return p


def main(argv: list[str]) -> int:
    """`edgeward register ...`: 0 after a clean SIGTERM/SIGINT, 1 if etcd is down, 2 on usage."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        endpoints = [parse_address(e) for item in args.etcd for e in item.split(",") if e]
        address = parse_address(args.address)
        ttl = parse_duration(args.ttl)
        timeout = parse_duration(args.timeout)
        labels = parse_labels(args.label)
        registration = Registration(endpoints, args.service, address, weight=args.weight,
                                    zone=args.zone, labels=labels, ttl=ttl, timeout=timeout,
                                    access=access_from_env(os.environ))
    except ValueError as exc:
        print(f"edgeward register: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(_serve(registration))
    except EtcdUnavailable as exc:
        print(f"edgeward register: {exc}", file=sys.stderr)
        return 1
    return 0


def parse_labels(items: list[str]) -> dict[str, str]:
    """`["class=iot", "sla=gold"]` -> `{"class": "iot", "sla": "gold"}`; ValueError if malformed."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--label wants KEY=VALUE, got {item!r}")
        labels[key] = value
    return labels


async def _serve(registration: Registration) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with registration:
        print(f"registered {registration.key.decode()}", flush=True)
        await stop.wait()
    print(f"deregistered {registration.key.decode()}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
