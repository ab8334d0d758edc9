"""Writes made during one event-loop iteration, sent together when its callbacks are done.

Every send to a peer that sleeps in epoll wakes it, and on a virtual machine a wake-up of an
idle CPU costs more than the send itself. Sent one by one, as each callback produces them, a
busy worker's writes reach its peers spaced out by its own processing, so each tends to find
its peer asleep again. Sent as a burst after the iteration's reads (one `call_soon` per
iteration), they find it awake: on loopback this cut the gateway's kernel time per request by
about a third. Nothing waits longer than the rest of the current iteration.

All writes and closes of a transport must go through its loop's outbox, so that they leave in
order; `abort` stays immediate (what it discards is meant to be discarded).
"""

from __future__ import annotations

import asyncio
import weakref

_OUTBOXES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Outbox] = (
    weakref.WeakKeyDictionary())


class Outbox:
    __slots__ = ("_loop", "_items", "_armed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: list[tuple[asyncio.Transport, bytes | list[bytes]]] = []
        self._armed = False

    def write(self, transport: asyncio.Transport, data: bytes | list[bytes]) -> None:
        """Send `data` (bytes, or a list of parts) at the end of this loop iteration. Writes
        that follow one another to the same transport leave together, in one `writelines`."""
        items = self._items
        if not self._armed:
            self._armed = True
            self._loop.call_soon(self.flush)
        elif items and data:
            item = items[-1]
            last = item[1]
            if item[0] is transport and last:
                items[-1] = (transport, _joined(last, data))
                return
        items.append((transport, data))

    def close(self, transport: asyncio.Transport) -> None:
        """Close `transport` after what was written to it before."""
        self.write(transport, b"")

    def flush(self) -> None:
        self._armed = False
        items = self._items
        if not items:
            return
        self._items = []
        for transport, data in items:
            try:
                if isinstance(data, bytes):
                    if data:
                        transport.write(data)
                    else:
                        transport.close()
                else:
                    transport.writelines(data)
            except Exception:  # noqa: BLE001
                # The transport was aborted or lost meanwhile (uvloop raises RuntimeError):
                # nothing to send there, and the other transports' writes must still go.
                pass


# Consecutive small writes to one transport are copied into one bytes (one `write`); larger
# ones are kept as parts (one `writelines`, no copy).
_COPY_BELOW = 16384


def _joined(last: bytes | list[bytes], data: bytes | list[bytes]) -> bytes | list[bytes]:
    if isinstance(last, bytes):
        if isinstance(data, bytes) and len(last) + len(data) < _COPY_BELOW:
            return last + data
        parts = [last]
    else:
        parts = last
    if isinstance(data, bytes):
        parts.append(data)
    else:
        parts.extend(data)
    return parts


def outbox_for(loop: asyncio.AbstractEventLoop) -> Outbox:
    """The outbox of `loop` (one per loop, created on first use)."""
    box = _OUTBOXES.get(loop)
    if box is None:
        box = _OUTBOXES[loop] = Outbox(loop)
    return box
