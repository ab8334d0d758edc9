"""A static `targets: [HOST:PORT, ...]` list turned into endpoint tuples (host, port, weight)."""

from __future__ import annotations

from edgeward.values import parse_address

# Every static target counts the same; weighted static lists are not part of the schema.
STATIC_WEIGHT = 1


def static_endpoints(targets: list[str]) -> list[tuple[str, int, int]]:
    """`["10.0.0.1:8000", "[::1]:80"]` -> `[("10.0.0.1", 8000, 1), ("::1", 80, 1)]`.

    Raises ValueError naming the target index and value for a malformed entry or a duplicate.
    """
    out: list[tuple[str, int, int]] = []
    seen: set[tuple[str, int]] = set()
    for i, target in enumerate(targets):
        try:
            host, port = parse_address(target)
        except ValueError as exc:
            raise ValueError(f"targets[{i}]: {exc}") from None
        if (host, port) in seen:
            raise ValueError(f"targets[{i}]: duplicate target {target!r}")
        seen.add((host, port))
        out.append((host, port, STATIC_WEIGHT))
    return out
