"""An upstream endpoint as the governance core sees it: address, weight and live counters.

The shell (connection pools, health checks, outlier detection) writes the counters and flags;
balancers only read them. One Endpoint object lives as long as its address stays in the
cluster, so a config reload that keeps the address keeps its state.
"""

from __future__ import annotations

from typing import Final

# Largest endpoint weight: the range of a DNS SRV weight (RFC 2782, 0-65535), so SRV answers
# keep their ratios, and 16 bits of ratio are more than any traffic split needs. It bounds
# what one endpoint can ask of a balancer (the ring and table sizes are bounded separately,
# see ring_hash.py and maglev.py); registry weights above it are clamped, config weights
# above it refused. HAProxy's cap is 256; Envoy bounds only the sum (2**32 - 1).
MAX_WEIGHT: Final = 65_535


def clamp_weight(weight: int) -> int:
    """A discovered weight brought into 1..MAX_WEIGHT."""
    return 1 if weight < 1 else MAX_WEIGHT if weight > MAX_WEIGHT else weight


class Endpoint:
    """One HOST:PORT of an upstream.

    `active` is the number of requests in flight to it (the shell increments on dispatch and
    decrements on completion); `healthy` is the active health check's verdict (True until a
    check says otherwise); `ejected` is set by outlier detection. `available` combines them.
    `zone` ("" when unknown) and `labels` come from config or the registry (docs/locality.md).
    """

    __slots__ = ("host", "port", "key", "weight", "active", "healthy", "ejected", "zone",
                 "labels")

    def __init__(self, host: str, port: int, weight: int = 1, zone: str = "",
                 labels: dict[str, str] | None = None) -> None:
        if not 1 <= weight <= MAX_WEIGHT:
            raise ValueError(f"weight must be between 1 and {MAX_WEIGHT}, got {weight}")
        self.host = host
        self.port = port
        self.key = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.weight = weight
        self.active = 0
        self.healthy = True
        self.ejected = False
        self.zone = zone
        self.labels: dict[str, str] = labels if labels is not None else {}

    @property
    def available(self) -> bool:
        return self.healthy and not self.ejected

    def __repr__(self) -> str:
        flags = "" if self.available else (" unhealthy" if not self.healthy else " ejected")
        return f"<Endpoint {self.key} w={self.weight} active={self.active}{flags}>"
