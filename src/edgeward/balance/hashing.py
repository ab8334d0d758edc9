"""One stable 64-bit hash for every keyed decision (ring hash, maglev, sticky gray split).

Stable across processes and hosts (unlike `hash()`, which is salted per process), so several
gateway workers send the same key to the same endpoint and the same canary side.
"""

from __future__ import annotations

from hashlib import blake2b


def hash64(data: str | bytes) -> int:
    """Unsigned 64-bit hash of `data` (UTF-8 for str)."""
    raw = data.encode() if isinstance(data, str) else data
    return int.from_bytes(blake2b(raw, digest_size=8).digest(), "big")
