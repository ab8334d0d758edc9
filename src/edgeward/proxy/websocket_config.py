"""Config read by edgeward.structs for `routes[].websocket` (docs/websocket.md).

A route accepts WebSocket handshakes only when it has this section; `websocket: true` is short
for `websocket: {}` (every default), `websocket: false` for none. The settings are per route
because what is idle, and how many tunnels are fair, depends on the application behind it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edgeward.http.tunnel import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_MESSAGE, TunnelSettings
from edgeward.values import Duration, Size, doc


@dataclass(frozen=True, kw_only=True)
class WebSocketConfig:
    idle_timeout: Duration | None = field(
        default=DEFAULT_IDLE_TIMEOUT,
        metadata=doc("a tunnel with no byte in either direction for this long gets a close "
                     "frame 1001 both ways (nginx proxy_read_timeout, 60 s); null = none"))
    ping_interval: Duration | None = field(
        default=None,
        metadata=doc("ping a side silent for this long; one that then sends nothing for as "
                     "long again is dead: close frames 1001 both ways. null = no gateway pings "
                     "(nginx and Traefik send none; most peers ping themselves)"))
    max_tunnels: int | None = field(
        default=None,
        metadata=doc("tunnels open at once on this route, per worker; a handshake beyond "
                     "gets 503 websocket_limit. null = no limit but the file descriptors "
                     "(nginx and Envoy set none either)"))
    max_message: Size = field(
        default=DEFAULT_MAX_MESSAGE,
        metadata=doc("largest message (all its fragments) a filter that accepts the "
                     "handshake itself (Reply.websocket) takes; beyond, close 1009. Tunnels "
                     "relay any size. 1 MiB as the `websockets` library's max_size"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            problems.append(("idle_timeout", "must be above 0 (or null for none)"))
        if self.ping_interval is not None and self.ping_interval <= 0:
            problems.append(("ping_interval", "must be above 0 (or null for none)"))
        if self.max_tunnels is not None and self.max_tunnels < 1:
            problems.append(("max_tunnels", "must be at least 1 (or null for no limit)"))
        if self.max_message < 1:
            problems.append(("max_message", "must be at least 1 byte"))
        return problems

    def settings(self) -> TunnelSettings:
        idle = self.idle_timeout if self.idle_timeout is not None else math.inf
        ping = self.ping_interval if self.ping_interval is not None else math.inf
        return TunnelSettings(idle_timeout=idle, max_tunnels=self.max_tunnels,
                              ping_interval=ping, max_message=int(self.max_message))


def expand_shorthand(raw: object) -> object:
    """`websocket: true` -> {} and `websocket: false` -> None; anything else as given."""
    if raw is True:
        return {}
    if raw is False:
        return None
    return raw
