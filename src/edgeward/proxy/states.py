"""The exchange's states and the transitions between them; any other transition raises.

    HEAD ──▶ FILTERING ──▶ CONNECTING ──▶ WAITING ──▶ STREAMING ──▶ DONE
                 │    └──────────────────────▲ │  ▲        
                 │            (pooled)         │  │ (keep-alive race: resend)
                 │              BACKOFF ◀──────┴──┘ (a try failed; the retry policy allows another)
                 ├──▶ DONE (a local reply)   and every state ──▶ DONE (failure, client gone)
                 └──▶ STREAMING (a local reply whose body a filter streams: Reply.stream)

HEAD: the request head is known. FILTERING: the route's request filters run, or one of them
waits. CONNECTING: an upstream connection is being opened. WAITING: the request is sent (or
its body still streams up) and the response head is awaited. BACKOFF: a failed try waits for
its retry. STREAMING: the response head went to the client and the body streams down.
"""

from __future__ import annotations

from typing import Final

from mypy_extensions import mypyc_attr

HEAD: Final = 0
FILTERING: Final = 1
CONNECTING: Final = 2
WAITING: Final = 3
BACKOFF: Final = 4
STREAMING: Final = 5
DONE: Final = 6

NAMES: Final = ("HEAD", "FILTERING", "CONNECTING", "WAITING", "BACKOFF", "STREAMING", "DONE")


# The table: from each state, the states it may go to.
TRANSITIONS: Final = {
    HEAD: (FILTERING, DONE),
    FILTERING: (CONNECTING, WAITING, STREAMING, DONE),
    CONNECTING: (WAITING, BACKOFF, DONE),
    WAITING: (STREAMING, BACKOFF, CONNECTING, DONE),
    BACKOFF: (CONNECTING, WAITING, DONE),
    STREAMING: (DONE,),
    DONE: (),
}

# The same table as one integer, bit `8 * old + new` set for each transition: a check is a
# shift and a mask (a test holds the two forms together).
ALLOWED_BITS: Final = 0x40_4C_74_58_6C_42


@mypyc_attr(native_class=False)
class TransitionError(RuntimeError):
    """A transition the table does not have: a bug, never a client's doing."""


def check(old: int, new: int) -> None:
    if not (ALLOWED_BITS >> (old * 8 + new)) & 1:
        raise TransitionError(f"exchange cannot go from {NAMES[old]} to {NAMES[new]}")
