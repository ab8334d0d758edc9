"""A bounded cache of verified tokens (sans-I/O: `now` is given).

A token seen again within its lifetime is admitted with one dict lookup instead of a signature
check. An entry holds what verification concluded (the consumer, the upstream header fields
made from its claims), the token's validity window, and the generation of the key set that
verified it: when the keys change (a JWKS rotation), entries of older sets no longer count,
so a token signed by a withdrawn key is checked again and refused.

Bounded by `max_entries`: when full, the oldest entry goes (insertion order: a token's entry
is written once and read many times, so no reordering on reads).
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class CachedToken(Generic[T]):
    __slots__ = ("value", "not_before", "expires", "generation")

    def __init__(self, value: T, not_before: float, expires: float, generation: int) -> None:
        self.value = value
        self.not_before = not_before
        self.expires = expires
        self.generation = generation


class TokenCache(Generic[T]):
    __slots__ = ("max_entries", "_entries")

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, CachedToken[T]] = {}

    def get(self, token: str, now: float, generation: int) -> T | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry.generation != generation or not entry.not_before <= now < entry.expires:
            del self._entries[token]
            return None
        return entry.value

    def put(self, token: str, value: T, not_before: float, expires: float,
            generation: int) -> None:
        if self.max_entries <= 0 or now_invalid(not_before, expires):
            return
        entries = self._entries
        if token not in entries and len(entries) >= self.max_entries:
            del entries[next(iter(entries))]
        entries[token] = CachedToken(value, not_before, expires, generation)

    def __len__(self) -> int:
        return len(self._entries)


def now_invalid(not_before: float, expires: float) -> bool:
    return expires <= not_before
