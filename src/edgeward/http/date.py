"""The `Date` field of responses the gateway makes itself (RFC 9110 section 6.6.1).

An origin server with a clock sends `Date` on every response; the gateway does so on its own
answers (errors, filter replies, the admin API). Formatting an IMF-fixdate costs more than the
rest of a small error response, so the value is formatted once per second and reused, as nginx
does with its cached `ngx_cached_http_time`.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Final

DATE: Final = b"date"


class DateCache:
    """The current second's IMF-fixdate (`Mon, 07 Dec 2026 06:21:10 GMT`), made once per second."""

    __slots__ = ("second", "value")

    def __init__(self) -> None:
        self.second = -1
        self.value = b""

    def at(self, now: float) -> bytes:
        """The field value for wall-clock time `now` (seconds since the epoch)."""
        second = int(now)
        if second != self.second:
            self.value = formatdate(second, usegmt=True).encode("ascii")
            self.second = second
        return self.value


_CACHE: Final = DateCache()


def http_date() -> bytes:
    """The `Date` value for now (the wall clock, read here: the one place the codecs need it)."""
    return _CACHE.at(time.time())
