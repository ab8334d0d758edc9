"""Regular expressions applied to request data: RE2, whose matching time is linear in the input.

Python's `re` backtracks: `/v1/users/([A-Za-z0-9_-]+/?)+` against `/v1/users/` + 25 x `a` + `!`
takes seconds, doubling with every added character, and holds the event loop meanwhile. The
docs promise Envoy `safe_regex` semantics, and those are RE2's (Google RE2, as Envoy uses):
no backreferences or lookaround, and a match costs time linear in the path whatever the
pattern. A pattern RE2 cannot express is refused at load with its key path and RE2's reason.

The `google-re2` package (PyPI wheels bundle the library) provides the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import re2

_OPTIONS: Any = re2.Options()
_OPTIONS.log_errors = False  # the reason is reported as a config problem, not on stderr

Matcher = Callable[[str], object]


def _reason(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    return detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)


def compile_fullmatch(pattern: str) -> Matcher:
    """`match(path)`: a match object when the WHOLE of `path` matches `pattern`, else None.
    Raises ValueError with RE2's reason when RE2 cannot compile the pattern."""
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        raise ValueError(
            f"does not compile as an RE2 pattern ({_reason(exc)}): {pattern!r}") from None
    fullmatch: Matcher = compiled.fullmatch
    return fullmatch


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be used, or None."""
    try:
        compile_fullmatch(pattern)
    except ValueError as exc:
        return str(exc)
    return None
