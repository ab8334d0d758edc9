"""The outbox sends a loop iteration's writes in order, once, and isolates a failing transport."""

from __future__ import annotations

import asyncio

from edgeward.http.outbox import outbox_for


class Recorder:
    def __init__(self, log: list[tuple[str, object]], name: str, broken: bool = False) -> None:
        self.log, self.name, self.broken = log, name, broken

    def write(self, data: bytes) -> None:
        if self.broken:
            raise RuntimeError("the handler is closed")
        self.log.append((self.name, data))

    def writelines(self, parts: list[bytes]) -> None:
        self.log.append((self.name, b"".join(parts)))

    def close(self) -> None:
        self.log.append((self.name, "close"))


async def test_writes_leave_in_order_at_the_end_of_the_iteration() -> None:
    log: list[tuple[str, object]] = []
    a, b, broken = Recorder(log, "a"), Recorder(log, "b"), Recorder(log, "x", broken=True)
    box = outbox_for(asyncio.get_running_loop())
    assert box is outbox_for(asyncio.get_running_loop())
    box.write(a, b"1")  # type: ignore[arg-type]
    box.write(broken, b"lost")  # type: ignore[arg-type]
    box.write(b, [b"2", b"3"])  # type: ignore[arg-type]
    box.write(a, b"4")  # type: ignore[arg-type]
    box.close(a)  # type: ignore[arg-type]
    assert log == []  # nothing leaves before the iteration's callbacks are done
    await asyncio.sleep(0)
    assert log == [("a", b"1"), ("b", b"23"), ("a", b"4"), ("a", "close")]
    box.write(b, b"5")  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert log[-1] == ("b", b"5")
