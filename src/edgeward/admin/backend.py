"""What the gateway gives the admin API: one object the integrator implements.

The admin server only reads views and forwards commands; it never touches the registry,
snapshots or sockets of the data plane. Every method but `apply_config` is synchronous and
must be quick (it runs on the event loop): return already-computed state, never wait on I/O.

Shapes the dashboard reads (other keys are passed through to the JSON endpoints untouched):

  upstreams_view() -> [{"name": "orders", "endpoints": [
        {"address": "10.0.0.1:8000", "healthy": true, "ejected": false,
         "breaker": "closed" | "open" | "half_open", "in_flight": 3, "ewma_ms": 12.5}, ...]}]
  reloads_view()   -> [{"time": 1717171717.0 (unix seconds), "result": "applied" | "refused",
                        "hash": "sha256 hex prefix", "error": null | "why"}], newest first
  stats_sample()   -> {"routes":    {name: {"requests": int, "errors": int,
                                           "buckets": [[le, cumulative_count], ...]}},
                       "upstreams": {name: {... same ...}},
                       "endpoints": {"upstream/endpoint": {"requests": int, "errors": int}}}
      (an endpoint's requests are attempts sent to it, errors those that failed: 5xx,
      timeout, connect error, reset)
      counts are CUMULATIVE since the gateway started (Prometheus counter semantics); `le` is an
      upper bound in seconds (a number, or the string "+Inf" / float inf for the last bucket).
"""

from __future__ import annotations

from typing import Any, Protocol

from edgeward.balance.endpoint import Endpoint


class AdminBackend(Protocol):
    def ready(self) -> bool:
        """True when the gateway accepts traffic (config loaded, listeners bound, not draining)."""
        ...

    def metrics_text(self, openmetrics: bool = False) -> str:
        """Prometheus text exposition format 0.0.4, or OpenMetrics 1.0 when asked for."""
        ...

    def config_view(self) -> dict[str, Any]:
        """The running config as plain data, secrets already redacted."""
        ...

    async def apply_config(self, text: str) -> list[str]:
        """Validate and apply YAML `text`; the problems found, or [] when it was applied."""
        ...

    def routes_view(self) -> list[dict[str, Any]]: ...

    def upstreams_view(self) -> list[dict[str, Any]]: ...

    def ratelimits_view(self) -> list[dict[str, Any]]: ...

    def certificates_view(self) -> list[dict[str, Any]]:
        """Each name the TLS listeners serve, soonest expiry first: `name`, `expires` (Unix
        time), `seconds_left` (negative once expired); [] without TLS listeners."""
        ...

    def reloads_view(self) -> list[dict[str, Any]]: ...

    def canaries_view(self) -> list[dict[str, Any]]:
        """Each route's canary: phase, weight, step, the window's counts, decision counts and
        the recent decisions with their figures (docs/canary.md)."""
        ...

    def canary_command(self, route: str, action: str) -> dict[str, Any]:
        """Carry out start | promote | pause | abort on a route's canary; the decision and the
        canary's view. KeyError: no canary on that route; CanaryStateError: the action does
        not apply in the canary's phase."""
        ...

    def drain(self) -> None:
        """Start a graceful drain: stop accepting, let in-flight requests finish."""
        ...

    def cache_view(self) -> dict[str, Any]:
        """The worker's cache: entries, bytes, purges applied, the fleet reader's position."""
        ...

    async def purge_cache(self, purges: list[tuple[str, str]]) -> dict[str, Any]:
        """Apply (kind, argument) purges here and publish them to the fleet: `purged` (entries
        removed here), `id` (the stream entry, null without a fleet), `shared_purged`
        (entries removed from the shared tier); with `code` (`purge_not_published`,
        `purge_not_shared`) and `detail` when the fleet or the shared tier could not be told."""
        ...

    def stats_sample(self) -> dict[str, Any]:
        """Cumulative per-route and per-upstream counts and latency buckets (see module doc)."""
        ...


def endpoint_view(
    endpoint: Endpoint, *, breaker: str | None, ewma_ms: float | None = None,
    health_checked: bool = False,
) -> dict[str, Any]:
    """The dashboard's endpoint row for one Endpoint; a helper for `upstreams_view()`.
    `breaker` is None without a circuit breaker; `health_checked` says whether `healthy`
    comes from active health checks (else it is only the default, True)."""
    return {
        "address": endpoint.key,
        "weight": endpoint.weight,
        "healthy": endpoint.healthy,
        "health_checked": health_checked,
        "ejected": endpoint.ejected,
        "breaker": breaker,
        "in_flight": endpoint.active,
        "ewma_ms": ewma_ms,
    }
