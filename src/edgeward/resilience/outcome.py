"""What happened to one upstream attempt, as the breaker, outlier detector and retry policy see it.

An `Outcome` is either a response status (`status=503`), a transport error (`error="timeout"`),
or both (a response head arrived, then the stream was reset). It is immutable and shared: the
shell never builds one per request, it picks a precomputed one:

    Outcome.of_status(200)          # cached for every status 100-599
    CONNECT_FAILURE, TIMEOUT, RESET # the three transport errors

Each outcome carries `flags`, a bit set computed once, so the hot paths ask "is this a failure
for me?" with a single `&` against a mask compiled from their config (`failure_on`, `on`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

ErrorKind = Literal["connect_failure", "timeout", "reset"]

# Flag bits. A config list such as `failure_on: [5xx, timeout]` compiles to the OR of its bits.
F_5XX: Final = 1 << 0          # any status 500-599
F_CONNECT_FAILURE: Final = 1 << 1
F_TIMEOUT: Final = 1 << 2
F_RESET: Final = 1 << 3
F_502: Final = 1 << 4
F_503: Final = 1 << 5
F_504: Final = 1 << 6

F_ERROR: Final = F_CONNECT_FAILURE | F_TIMEOUT | F_RESET
# Envoy's "gateway failure": 502/503/504 or a locally originated error.
F_GATEWAY: Final = F_502 | F_503 | F_504 | F_ERROR
# What outlier detection calls a failure: any 5xx or transport error (Envoy maps local-origin
# errors onto 5xx unless split_external_local_origin_errors is set).
F_SERVER: Final = F_5XX | F_ERROR

FLAG_BY_NAME: Final[dict[str, int]] = {
    "5xx": F_5XX,
    "connect_failure": F_CONNECT_FAILURE,
    "timeout": F_TIMEOUT,
    "reset": F_RESET,
    "502": F_502,
    "503": F_503,
    "504": F_504,
}

_ERROR_FLAG: Final[dict[str, int]] = {
    "connect_failure": F_CONNECT_FAILURE,
    "timeout": F_TIMEOUT,
    "reset": F_RESET,
}
_STATUS_FLAG: Final[dict[int, int]] = {502: F_502, 503: F_503, 504: F_504}


def mask_of(names: Iterable[str]) -> int:
    """OR of the flag bits of `names` (keys of FLAG_BY_NAME); raises KeyError on an unknown one."""
    mask = 0
    for name in names:
        mask |= FLAG_BY_NAME[name]
    return mask


class Outcome:
    """One upstream attempt's result. Immutable (read-only properties over private slots, so
    it compiles with mypyc); compare with `==`; cheap to share."""

    __slots__ = ("_status", "_error", "_flags", "_failed", "_gateway_failure")

    def __init__(self, status: int | None = None, error: ErrorKind | None = None) -> None:
        if status is None and error is None:
            raise ValueError("an Outcome needs a status, an error or both, got neither")
        if status is not None and (isinstance(status, bool) or not 100 <= status <= 599):
            raise ValueError(f"status must be 100-599, got {status!r}")
        if error is not None and error not in _ERROR_FLAG:
            raise ValueError(f"error must be one of {', '.join(_ERROR_FLAG)}, got {error!r}")
        flags = 0
        if status is not None:
            if status >= 500:
                flags |= F_5XX
            flags |= _STATUS_FLAG.get(status, 0)
        if error is not None:
            flags |= _ERROR_FLAG[error]
        self._status = status
        self._error: ErrorKind | None = error
        self._flags = flags
        self._failed = bool(flags & F_SERVER)
        self._gateway_failure = bool(flags & F_GATEWAY)

    @property
    def status(self) -> int | None:
        return self._status

    @property
    def error(self) -> ErrorKind | None:
        return self._error

    @property
    def flags(self) -> int:
        return self._flags

    @property
    def failed(self) -> bool:
        """5xx or transport error (outlier detection's notion of failure)."""
        return self._failed

    @property
    def gateway_failure(self) -> bool:
        """502/503/504 or transport error."""
        return self._gateway_failure

    @staticmethod
    def of_status(status: int) -> Outcome:
        """The shared Outcome for a response status 100-599 (no allocation)."""
        if 100 <= status <= 599:
            return _BY_STATUS[status - 100]
        raise ValueError(f"status must be 100-599, got {status!r}")

    @staticmethod
    def of_error(error: ErrorKind) -> Outcome:
        """The shared Outcome for a transport error with no response."""
        try:
            return _BY_ERROR[error]
        except KeyError:
            raise ValueError(
                f"error must be one of {', '.join(_ERROR_FLAG)}, got {error!r}"
            ) from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Outcome):
            return NotImplemented
        return self.status == other.status and self.error == other.error

    def __hash__(self) -> int:
        return hash((self.status, self.error))

    def __repr__(self) -> str:
        if self.error is None:
            return f"Outcome({self.status})"
        if self.status is None:
            return f"Outcome({self.error})"
        return f"Outcome({self.status}, {self.error})"


_BY_STATUS: Final[tuple[Outcome, ...]] = tuple(Outcome(s) for s in range(100, 600))
CONNECT_FAILURE: Final = Outcome(error="connect_failure")
TIMEOUT: Final = Outcome(error="timeout")
RESET: Final = Outcome(error="reset")
_BY_ERROR: Final[dict[str, Outcome]] = {
    "connect_failure": CONNECT_FAILURE,
    "timeout": TIMEOUT,
    "reset": RESET,
}
OK: Final = _BY_STATUS[200 - 100]
