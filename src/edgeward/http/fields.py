"""Header fields as filters and codecs share them: an ordered list that remembers what is relayable.

`Headers` wraps the list of `(name, value)` byte pairs a codec parsed (hop-by-hop and framing
fields already removed). Names are compared case-insensitively; the first value of a name is
what `get` returns. Filters use the `str` methods (`get`, `set`, `add`, `remove`); the gateway
itself appends with `append` (bytes, no checks: its own names and values are known good).

Relaying: writing a head again costs more than the rest of a request's handling, so a codec
sends on the bytes it received when nothing changed them. `wire` holds the bytes that are
exactly the head's start line and its first `wired` fields as they will be sent: the head as
received, then blocks of fields the gateway added with their lines ready (`append_block`).
`add` and `append` only extend the list: the codec writes the fields after `wired` behind
`wire`. `set` or `remove` touching one of the first `wired` fields drops `wire`, and the codec
then writes the whole head from the list (so does anything that changes the start line).

A filter can never make the gateway send a framing or connection-level field, nor a field
that would break the head apart: `set`/`add` refuse hop-by-hop and framing names, names that
are not RFC 9110 tokens, and values carrying CR, LF or NUL (`ValueError`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

# Framing and connection-level names (RFC 9110 §7.6.1, RFC 9112 §6): the codecs own them.
RESERVED: Final = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade",
    "content-length", "trailer", "proxy-authenticate", "proxy-authorization",
})
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE: Final = re.compile(r"[\r\n\x00]")


def check_name(name: str) -> bytes:
    """`name` as bytes, or ValueError when a filter may not set it."""
    if _TOKEN.fullmatch(name) is None:
        raise ValueError(f"not a header name (RFC 9110 token): {name!r}")
    if name.lower() in RESERVED:
        raise ValueError(f"{name} is a framing or hop-by-hop header; the gateway sets it")
    return name.encode("ascii")


def check_value(value: str) -> bytes:
    """`value` as bytes (latin-1), or ValueError when it would break the head apart."""
    if _BAD_VALUE.search(value) is not None:
        raise ValueError(f"a header value cannot contain CR, LF or NUL: {value!r}")
    try:
        return value.strip(" \t").encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"a header value must be latin-1 text: {value!r}") from None


class Headers:
    """The fields of one message, in order. See the module docstring."""

    __slots__ = ("fields", "wire", "wired", "_index")

    def __init__(self, fields: list[tuple[bytes, bytes]], wire: bytes | None = None,
                 wired: int = 0) -> None:
        self.fields = fields
        self.wire = wire      # the start line and fields[:wired] as bytes; None: write them
        self.wired = wired
        self._index: dict[str, str] | None = None

    # reading -------------------------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name` (any case), or `default`."""
        index = self._index
        if index is None:
            index = {}
            for n, v in self.fields:
                index.setdefault(n.decode("latin-1").lower(), v.decode("latin-1"))
            self._index = index
        value = index.get(name.lower())
        return default if value is None else value

    def first(self, name: bytes) -> bytes | None:
        """The first value of the lower-case `name`, found by scanning (no index is built:
        for a filter that reads one field of a head nothing else reads)."""
        size = len(name)
        for n, v in self.fields:
            if len(n) == size and n.lower() == name:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for n, v in self.fields if n.lower() == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for n, v in self.fields:
            yield n.decode("latin-1"), v.decode("latin-1")

    def __len__(self) -> int:
        return len(self.fields)

    def items(self) -> list[tuple[str, str]]:
        return list(self)

    # changing ------------------------------------------------------------------------------
    def set(self, name: str, value: str) -> None:
        """Replace every field `name` with one carrying `value` (where the first one was)."""
        raw_name, raw_value = check_name(name), check_value(value)
        key = raw_name.lower()
        fields = self.fields
        first = -1
        i = 0
        while i < len(fields):
            if fields[i][0].lower() == key:
                self._touch(i)
                if first < 0:
                    first = i
                    fields[i] = (raw_name, raw_value)
                    i += 1
                else:
                    del fields[i]
            else:
                i += 1
        if first < 0:
            fields.append((raw_name, raw_value))
        self._index = None

    def add(self, name: str, value: str) -> None:
        """Add one more field `name: value` at the end (others of that name stay)."""
        self.fields.append((check_name(name), check_value(value)))
        self._index = None

    def remove(self, name: str) -> int:
        """Remove every field `name`; returns how many there were. Any name may be removed
        (framing fields are not in this list)."""
        key = name.lower().encode("latin-1")
        size = len(key)
        fields = self.fields
        kept: list[tuple[bytes, bytes]] = []
        removed = 0
        for i, item in enumerate(fields):
            n = item[0]
            if len(n) == size and n.lower() == key:
                self._touch(i)
                removed += 1
            else:
                kept.append(item)
        if removed:
            fields[:] = kept
            self._index = None
        return removed

    def append(self, name: bytes, value: bytes) -> None:
        """The gateway's own field, unchecked (its names and values are known good)."""
        self.fields.append((name, value))
        self._index = None

    def append_block(self, fields: list[tuple[bytes, bytes]], block: bytes) -> None:
        """The gateway's own fields, unchecked, at the end, with `block` their lines exactly
        as they are to be sent (`name: value\r\n` each): the wire grows by it when it covers
        every field so far."""
        wire = self.wire
        if wire is not None and self.wired == len(self.fields):
            self.wire = wire + block  # heads are small: a copy costs less than a later join
            self.wired += len(fields)
        self.fields.extend(fields)
        self._index = None

    def append_line(self, name: bytes, value: bytes, line: bytes) -> None:
        """`append_block` of one field (`line` is `name: value\r\n`)."""
        wire = self.wire
        fields = self.fields
        if wire is not None and self.wired == len(fields):
            self.wire = wire + line
            self.wired += 1
        fields.append((name, value))
        self._index = None

    def relayed(self) -> bytes | None:
        """The head as received plus the fields added since, as they are to be sent (`name:
        value\r\n` each, no blank line); None when a received field was changed, and the head
        must be written from its fields."""
        wire = self.wire
        if wire is None or self.wired == len(self.fields):
            return wire
        parts = [wire]
        write_fields(parts, self.fields, self.wired)
        return b"".join(parts)

    def _touch(self, i: int) -> None:
        if i < self.wired:
            self.wire = None

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


def write_fields(parts: list[bytes], fields: list[tuple[bytes, bytes]], start: int = 0) -> None:
    """Append `name: value\\r\\n` for fields[start:] to `parts`."""
    for i in range(start, len(fields)):
        name, value = fields[i]
        parts.append(name)
        parts.append(b": ")
        parts.append(value)
        parts.append(b"\r\n")
