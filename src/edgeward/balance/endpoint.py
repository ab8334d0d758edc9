"""An upstream endpoint as the governance core sees it: address, weight and live counters.

The shell (connection pools, health checks, outlier detection) writes the counters and flags;
balancers only read them. One Endpoint object lives as long as its address stays in the
cluster, so a config reload that keeps the address keeps its state.
"""

from __future__ import annotations


class Endpoint:
    """One HOST:PORT of an upstream.

    `active` is the number of requests in flight to it (the shell increments on dispatch and
    decrements on completion); `healthy` is the active health check's verdict (True until a
    check says otherwise); `ejected` is set by outlier detection. `available` combines them.
    """

    __slots__ = ("host", "port", "key", "weight", "active", "healthy", "ejected")

    def __init__(self, host: str, port: int, weight: int = 1) -> None:
        if weight < 1:
            raise ValueError(f"weight must be >= 1, got {weight}")
        self.host = host
        self.port = port
        self.key = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.weight = weight
        self.active = 0
        self.healthy = True
        self.ejected = False

    @property
    def available(self) -> bool:
        return self.healthy and not self.ejected

    def __repr__(self) -> str:
        flags = "" if self.available else (" unhealthy" if not self.healthy else " ejected")
        return f"<Endpoint {self.key} w={self.weight} active={self.active}{flags}>"
