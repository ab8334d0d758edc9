"""A route's filters, compiled once per config: ordered, and split by the phases they override.

`Chain.filters` holds every filter in run order (by `order`, then by the route's list). Each
phase tuple holds only the filters that override that phase, with each filter's position in
`filters` beside it, so the exchange calls nobody for nothing and can tell which filters a
request passed: those before the one that replied (all of them when it was forwarded).
"""

from __future__ import annotations

from collections.abc import Sequence

from edgeward.filters.api import Filter


def _overrides(f: Filter, method: str) -> bool:
    return getattr(type(f), method) is not getattr(Filter, method)


class Chain:
    __slots__ = (
        "filters", "request", "request_at", "request_body", "response", "response_at",
        "response_body", "response_body_at", "done", "done_at",
    )

    def __init__(self, filters: Sequence[Filter]) -> None:
        # Stable: list order within an order. The class's `order`, read as Python reads it (a
        # user's class may set it as a plain class attribute).
        ordered = sorted(filters, key=lambda f: int(type(f).order))
        self.filters = tuple(ordered)
        self.request, self.request_at = self._phase("on_request")
        self.request_body, _ = self._phase("on_request_body")
        self.response, self.response_at = self._phase("on_response")
        self.response_body, self.response_body_at = self._phase("on_response_body")
        self.done, self.done_at = self._phase("on_done")

    def _phase(self, method: str) -> tuple[tuple[Filter, ...], tuple[int, ...]]:
        pairs = [(f, i) for i, f in enumerate(self.filters) if _overrides(f, method)]
        return tuple(f for f, _ in pairs), tuple(i for _, i in pairs)

    def __len__(self) -> int:
        return len(self.filters)

    def __repr__(self) -> str:
        return f"<Chain {[f.name or type(f).__name__ for f in self.filters]}>"


EMPTY = Chain(())
