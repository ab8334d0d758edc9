"""Value types every concern's configuration shares: durations, rates, sizes, addresses, docs.

A leaf module: it imports nothing of edgeward, so any package may use it without depending on
the config loader. The loader (`edgeward.structs`) reads a field annotated with one of
these types through the parser registered in `SPECIAL`.

  Duration   a string with units: "250ms", "3s", "1m", "1h", "1m30s", "1h2m3.5s" -> float seconds
  Rate       "N/s", "N/m", "N/h" -> float per second
  Size       "512", "64KiB", "16MiB", "1GiB" (also kB/MB/GB) -> int bytes
  Address    "HOST:PORT" or "[v6]:PORT" -> (host, port)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any


class Kind:
    """Marker placed in `Annotated[...]` to select a special reader."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


DURATION = Kind("duration")
RATE = Kind("rate")
SIZE = Kind("size")
ADDRESS = Kind("address")

Duration = Annotated[float, DURATION]
Rate = Annotated[float, RATE]
Size = Annotated[int, SIZE]
Address = Annotated[tuple[str, int], ADDRESS]

# One or more NUMBER UNIT parts, largest unit first, each unit once: the compound form of Go's
# time.ParseDuration that Traefik and Caddy users write (`1m30s`), kept stricter than Go in
# that `30s1m` or `1s1s` is refused as the likely typo it is.
_DURATION_PART = r"(\d+(?:\.\d+)?)\s*(us|ms|h|m|s)"
_DURATION_RE = re.compile(rf"^\s*(?:{_DURATION_PART}\s*)+$")
_DURATION_PARTS = re.compile(_DURATION_PART)
_DURATION_ORDER = ("h", "m", "s", "ms", "us")
_DURATION_UNITS = {"us": Fraction(1, 10**6), "ms": Fraction(1, 1000), "s": Fraction(1),
                   "m": Fraction(60), "h": Fraction(3600)}
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h)\s*$")
_RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|kB|KB|MB|GB)?\s*$")
_SIZE_UNITS = {
    None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3,
    "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3,
}


def parse_duration(raw: object) -> float:
    """`"250ms"` -> 0.25, `"1m30s"` -> 90.0. Raises ValueError with the reason.

    Parts are summed exactly (as fractions) and rounded to a float once, so a duration that
    `format_duration` rendered reads back as the same float."""
    if isinstance(raw, bool) or not isinstance(raw, str):
        raise ValueError(f"expected a duration with a unit like 250ms or 3s, got {raw!r}")
    if not _DURATION_RE.match(raw):
        raise ValueError(f"expected a duration with a unit (us, ms, s, m, h), or several "
                         f"largest first like 1m30s, got {raw!r}")
    total = Fraction(0)
    last = -1
    for number, unit in _DURATION_PARTS.findall(raw):
        rank = _DURATION_ORDER.index(unit)
        if rank <= last:
            raise ValueError(f"a duration's parts go from the largest unit to the smallest, "
                             f"each once (like 1h2m3s), got {raw!r}")
        last = rank
        total += Fraction(number) * _DURATION_UNITS[unit]
    return float(total)


def format_duration(seconds: float) -> str:
    """90.0 -> `"1m30s"`, 0.25 -> `"250ms"`: the shortest compound form, to the microsecond
    (a finer fraction is rounded). `parse_duration` reads it back as the same float for
    every whole number of microseconds."""
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {seconds}")
    us = round(Fraction(seconds) * 10**6)
    hours, rest = divmod(us, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    parts = [f"{hours}h"] if hours else []
    if minutes:
        parts.append(f"{minutes}m")
    if rest >= 1_000_000:
        parts.append(f"{_decimal(rest, 6)}s")
    elif rest >= 1000:
        parts.append(f"{_decimal(rest, 3)}ms")
    elif rest:
        parts.append(f"{rest}us")
    return "".join(parts) or "0s"


def _decimal(whole: int, shift: int) -> str:
    """`whole` * 10**-shift written without exponent or trailing zeros."""
    return f"{Decimal(whole).scaleb(-shift).normalize():f}"


def parse_rate(raw: object) -> float:
    """`"100/s"` -> 100.0 per second, `"5/m"` -> 1/12."""
    if not isinstance(raw, str):
        raise ValueError(f"expected a rate like 100/s, 5/m or 3/h, got {raw!r}")
    m = _RATE_RE.match(raw)
    if not m:
        raise ValueError(f"expected a rate like 100/s, 5/m or 3/h, got {raw!r}")
    return float(m.group(1)) / _RATE_UNITS[m.group(2)]


def parse_size(raw: object) -> int:
    """`"16MiB"` -> 16777216; a plain integer is bytes."""
    if isinstance(raw, bool):
        raise ValueError(f"expected a size like 64KiB or 16MiB, got {raw!r}")
    if isinstance(raw, int):
        if raw < 0:
            raise ValueError(f"a size cannot be negative, got {raw}")
        return raw
    if isinstance(raw, str):
        m = _SIZE_RE.match(raw)
        if m:
            return int(m.group(1)) * _SIZE_UNITS[m.group(2)]
    raise ValueError(f"expected a size like 512, 64KiB, 16MiB or 1GiB, got {raw!r}")


def parse_address(raw: object) -> tuple[str, int]:
    """`"10.0.0.1:8000"` -> ("10.0.0.1", 8000); `"[::1]:80"` -> ("::1", 80)."""
    if not isinstance(raw, str):
        raise ValueError(f"expected HOST:PORT, got {raw!r}")
    text = raw.strip()
    if text.lower().startswith(("http://", "https://")):
        raise ValueError(f"a scheme is allowed only when every target of the upstream has the "
                         f"same one (https:// turns tls on), got {raw!r}")
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError(f"expected [IPv6]:PORT, got {raw!r}")
        host, port_text = text[1:end], text[end + 2 :]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"expected HOST:PORT, got {raw!r}")
    if not host:
        raise ValueError(f"missing host in {raw!r}")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port must be 1-65535 in {raw!r}")
    return host, int(port_text)


SPECIAL: dict[Kind, Callable[[object], Any]] = {
    DURATION: parse_duration,
    RATE: parse_rate,
    SIZE: parse_size,
    ADDRESS: parse_address,
}


def doc(text: str) -> dict[str, str]:
    """Field metadata helper: `field(default=..., metadata=doc("why this default"))`."""
    return {"doc": text}
