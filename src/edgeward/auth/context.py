"""What the authentication filters get from the gateway besides their config.

The composition root (edgeward.compose) makes one `AuthContext` per worker: the consumer
directory, and `subrequest`, which sends a request to a named upstream over the data plane's
own client (pools, balancer, breaker: edgeward.proxy.subrequest). This package depends on
these two seams only, never on the proxy itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from edgeward.auth.directory import ConsumerDirectory


class SubResponse(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class SubrequestFailed(Exception):
    """No usable answer (connect failure, timeout, reset...); `code` is the gateway's error
    code for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# subrequest(upstream, method, target, fields, timeout) -> SubResponse, or SubrequestFailed
Subrequest = Callable[[str, str, str, list[tuple[str, str]], float], Awaitable[SubResponse]]


async def _no_subrequests(upstream: str, method: str, target: str,
                          fields: list[tuple[str, str]], timeout: float) -> SubResponse:
    raise SubrequestFailed("no_healthy_upstream", f"no upstream named {upstream!r}")


@dataclass
class AuthContext:
    consumers: ConsumerDirectory = field(default_factory=ConsumerDirectory)
    subrequest: Subrequest = _no_subrequests
    upstreams: frozenset[str] = frozenset()  # names a method may refer to
    environ: Mapping[str, str] = field(default_factory=dict)
