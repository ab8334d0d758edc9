"""Upstream connect failures, logged as one structured, rate-limited warning per endpoint.

A down endpoint fails every request sent to it; a line per failure would flood the log at
the rate of the traffic. The forwarder records each failure as an event on its cluster (no
I/O on the request path); once a second the worker's upkeep hands the events to
`ConnectFailureLog`, which logs the first failure of an endpoint at once and then at most one
line per endpoint every CONNECT_WARN_EVERY seconds, saying how many failures it stands for:

    upstream orders: cannot connect to 10.0.0.1:8000: connection refused (12 failures)

In the JSON process log the same line carries `event`, `upstream`, `endpoint`, `reason` and
`failures` as members. Every failure is still counted, per attempt, in
`edgeward_upstream_requests_total{outcome="connect_error"}`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from edgeward.balance.endpoint import Endpoint
    from edgeward.proxy.cluster import Cluster

log = logging.getLogger("edgeward.proxy")

# Ten seconds: a failing endpoint shows up within the upkeep second, and a dead one costs six
# lines a minute however busy the route is (Envoy logs upstream connect errors per request only
# at debug level; its stats carry the counts, as the metric above does here).
CONNECT_WARN_EVERY: Final = 10.0


class ConnectFailure(NamedTuple):
    endpoint: str
    reason: str


def reason_of(exc: BaseException) -> str:
    """`connection refused`, `timed out`: the OS's words for an errno, not a Python repr."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int) and errno > 0:
        return os.strerror(errno).lower()
    return str(exc) or type(exc).__name__


def record_connect_failure(cluster: Cluster | None, endpoint: Endpoint | None,
                           exc: BaseException) -> None:
    """The forwarder's one call: queue the failure on the cluster for the upkeep."""
    if cluster is not None and endpoint is not None:
        cluster.events.append(ConnectFailure(endpoint.key, reason_of(exc)))


class _Pending:
    __slots__ = ("failures", "reason", "warned_at")

    def __init__(self) -> None:
        self.failures = 0
        self.reason = ""
        self.warned_at: float | None = None


class ConnectFailureLog:
    """Counts failures per (upstream, endpoint) and says which are due a warning (the time is
    passed in)."""

    def __init__(self, every: float = CONNECT_WARN_EVERY) -> None:
        self.every = every
        self._pending: dict[tuple[str, str], _Pending] = {}

    def record(self, upstream: str, failure: ConnectFailure) -> None:
        entry = self._pending.setdefault((upstream, failure.endpoint), _Pending())
        entry.failures += 1
        entry.reason = failure.reason

    def due(self, now: float) -> list[tuple[str, str, str, int]]:
        """(upstream, endpoint, last reason, failures since the last warning) for each
        endpoint whose warning is due; forgets endpoints quiet for a whole period."""
        out = []
        for key, entry in list(self._pending.items()):
            quiet = entry.warned_at is not None and now - entry.warned_at < self.every
            if entry.failures and not quiet:
                out.append((key[0], key[1], entry.reason, entry.failures))
                entry.failures, entry.warned_at = 0, now
            elif not entry.failures and not quiet:
                del self._pending[key]
        return out

    def flush(self, now: float) -> None:
        for upstream, endpoint, reason, failures in self.due(now):
            log.warning(
                "upstream %s: cannot connect to %s: %s (%d failure%s)", upstream, endpoint,
                reason, failures, "" if failures == 1 else "s",
                extra={"fields": {"event": "upstream_connect_failed", "upstream": upstream,
                                  "endpoint": endpoint, "reason": reason,
                                  "failures": failures}})
