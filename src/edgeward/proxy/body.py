"""The request body on its way upstream: what waits for a connection, what can be sent again.

`RequestBody` is the base of `Forwarder` (one object per exchange, not two): the parts that
arrived before a connection was ready (`pending`, bounded: beyond `PENDING_LIMIT` the caller
pauses the client) and the parts kept for a resend (`replay`, up to the route's replay limit;
once the body outgrows it, nothing is kept and the request can no longer be sent again).
"""

from __future__ import annotations

from typing import Final

from edgeward.http.stream import ResponseHandler, Trailers

# Request body bytes held for a connection being opened before the client is paused; the
# codecs' write buffers pause at the same 64 KiB.
PENDING_LIMIT: Final = 64 * 1024


class RequestBody(ResponseHandler):
    __slots__ = ("pending", "pending_size", "replay", "replay_size", "replay_kept", "ended",
                 "trailers", "no_body")

    def __init__(self, no_body: bool) -> None:
        self.no_body = no_body          # the request has no body at all
        self.pending: list[bytes] | None = None  # parts waiting for a connection
        self.pending_size = 0
        self.replay: list[bytes] | None = None   # parts kept for a resend
        self.replay_size = 0
        self.replay_kept = True         # every part so far is in `replay`
        self.ended = no_body            # the whole body has been handed over
        self.trailers: Trailers = None

    def keep(self, data: bytes, limit: int) -> None:
        """Keep `data` for a resend while the body stays within `limit` bytes."""
        if not self.replay_kept:
            return
        size = self.replay_size + len(data)
        if size > limit:
            self.replay_kept = False
            self.replay = None
            return
        self.replay_size = size
        if self.replay is None:
            self.replay = [data]
        else:
            self.replay.append(data)

    def hold(self, data: bytes) -> bool:
        """Hold `data` until a connection is ready; True once too much is held."""
        if self.pending is None:
            self.pending = [data]
        else:
            self.pending.append(data)
        self.pending_size += len(data)
        return self.pending_size > PENDING_LIMIT

    def take_pending(self) -> list[bytes] | None:
        parts = self.pending
        self.pending = None
        self.pending_size = 0
        return parts

    def replayable(self) -> bool:
        """The whole request can be sent again: it has no body, or all of it was kept."""
        return self.no_body or (self.ended and self.replay_kept)
