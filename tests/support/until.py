"""Awaiting a condition in an async test without blocking its loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def until(probe: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """The first true value of `probe()` (a safety net against hanging, not a measure)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")
