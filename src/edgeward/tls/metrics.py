"""`edgeward_tls_certificate_expiry_seconds{name}`: seconds until each served name's
certificate expires (negative once expired), for alerts such as `< 14 * 86400`.

The gateway declares the gauge once (`expiry_gauge(registry)`) and refreshes it before each
scrape or on a timer with `export_expiry(gauge, store.expiry(time.time()), ...)`; several
listeners' stores are combined with the soonest expiry per name winning.
"""

from __future__ import annotations

from collections.abc import Mapping

from edgeward.observe.metrics import Gauge, Registry

EXPIRY_METRIC = "edgeward_tls_certificate_expiry_seconds"
# One child per served DNS name; a gateway with more names than this is rare, and the
# registry's overflow child makes an excess visible instead of unbounded.
MAX_NAMES = 10_000


def expiry_gauge(registry: Registry) -> Gauge:
    """Declare the family. Workers serve the same files, so the merge keeps the max (a worker
    that already reloaded a renewed certificate is the truth)."""
    return registry.gauge(EXPIRY_METRIC,
                          "Seconds until the certificate serving this name expires",
                          ["name"], max_children=MAX_NAMES, aggregate="max")


def soonest(*expiries: Mapping[str, float]) -> dict[str, float]:
    """The soonest expiry per name (seconds left) over `expiries`, one mapping per listener."""
    out: dict[str, float] = {}
    for expiry in expiries:
        for name, seconds in expiry.items():
            out[name] = min(seconds, out.get(name, seconds))
    return out


def export_expiry(gauge: Gauge, *expiries: Mapping[str, float]) -> None:
    """Replace the gauge's children with the soonest expiry per name of `expiries`."""
    gauge.clear()
    for name, seconds in soonest(*expiries).items():
        gauge.labels(name).set(seconds)
