"""A limiter's answer for one request, and the response headers that tell the client about it.

Headers follow the IETF httpapi RateLimit header draft (draft-ietf-httpapi-ratelimit-headers,
the widely deployed -03..-06 shape): `RateLimit-Limit`, `RateLimit-Remaining`,
`RateLimit-Reset` (delta seconds) and `RateLimit-Policy` (`<limit>;w=<window>`), plus RFC 9110
`Retry-After` (integer delta seconds, rounded up) when the request is refused.
"""

from __future__ import annotations

import math
from typing import Final


class Decision:
    """What a limiter decided: admit or refuse, and what the client may be told.

    allowed      admit the request (always True in shadow mode; see `shadow`)
    limit        the most requests (cost units) the key may spend at once: the burst
    remaining    cost units the key could still spend right now
    reset_after  seconds until the key is back to its full burst
    retry_after  seconds until a request of the same cost would be admitted (0 when allowed)
    delay        seconds the shell holds the request before forwarding it (leaky bucket
                 without nodelay; 0 otherwise)
    shadow       the limiter would have refused but enforcement is off (shadow mode)
    """

    __slots__ = ("allowed", "limit", "remaining", "reset_after", "retry_after", "delay", "shadow")

    def __init__(
        self,
        allowed: bool,
        limit: int,
        remaining: int,
        reset_after: float,
        retry_after: float = 0.0,
        delay: float = 0.0,
        shadow: bool = False,
    ) -> None:
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.reset_after = reset_after
        self.retry_after = retry_after
        self.delay = delay
        self.shadow = shadow

    def __repr__(self) -> str:
        verdict = "allowed" if self.allowed else "refused"
        extra = f" retry_after={self.retry_after:.3f}" if not self.allowed else ""
        if self.delay:
            extra += f" delay={self.delay:.3f}"
        if self.shadow:
            extra += " shadow"
        return (
            f"<Decision {verdict} {self.remaining}/{self.limit}"
            f" reset_after={self.reset_after:.3f}{extra}>"
        )


def _ceil_seconds(value: float) -> int:
    # Headers carry whole seconds; rounding down would invite a retry that is refused again.
    return max(0, math.ceil(value - 1e-9))


class _Fields:
    """The RateLimit-* fields sent last, kept with the numbers they show: consecutive answers
    of one limit mostly repeat them (same limit and policy; remaining and reset move slowly),
    so the common answer copies four ready-made pairs instead of formatting four numbers."""

    __slots__ = ("limit", "window", "remaining", "reset", "pairs", "lines")

    def __init__(self) -> None:
        self.limit = -1
        self.window = -1
        self.remaining = -1
        self.reset = -1
        self.pairs: list[tuple[bytes, bytes]] = [
            (b"ratelimit-limit", b""), (b"ratelimit-remaining", b""),
            (b"ratelimit-reset", b""), (b"ratelimit-policy", b""),
        ]
        self.lines = b""  # the pairs as header lines; b"" when a pair changed since


_FIELDS: Final = _Fields()


def _update(decision: Decision, policy_window: float) -> _Fields:
    """Bring the shared fields up to `decision` (formatting only the numbers that moved)."""
    limit = decision.limit
    remaining = max(0, decision.remaining)
    reset = _ceil_seconds(decision.reset_after)
    window = max(1, _ceil_seconds(policy_window))
    f = _FIELDS
    pairs = f.pairs
    if limit != f.limit or window != f.window:
        f.limit = limit
        f.window = window
        pairs[0] = (b"ratelimit-limit", b"%d" % limit)
        pairs[3] = (b"ratelimit-policy", b"%d;w=%d" % (limit, window))
        f.lines = b""
    if remaining != f.remaining:
        f.remaining = remaining
        pairs[1] = (b"ratelimit-remaining", b"%d" % remaining)
        f.lines = b""
    if reset != f.reset:
        f.reset = reset
        pairs[2] = (b"ratelimit-reset", b"%d" % reset)
        f.lines = b""
    return f



def response_headers(decision: Decision, policy_window: float) -> list[tuple[bytes, bytes]]:
    """Headers for the client: `policy_window` is the seconds over which `limit` refills
    (burst / rate). A refused request also gets `Retry-After` (at least 1 second)."""
    headers = _update(decision, policy_window).pairs[:]
    if not decision.allowed:
        headers.append((b"retry-after", b"%d" % max(1, _ceil_seconds(decision.retry_after))))
    return headers


def response_fields(decision: Decision,
                    policy_window: float) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The RateLimit-* fields of an admitted response, and the same as `name: value\r\n`
    lines, joined again only when one of them changed (consecutive responses mostly repeat
    them). The list is shared: copy what you keep of it."""
    f = _update(decision, policy_window)
    lines = f.lines
    if not lines:
        lines = f.lines = b"".join([n + b": " + v + b"\r\n" for n, v in f.pairs])
    return f.pairs, lines
