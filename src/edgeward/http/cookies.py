"""The request `Cookie` header as name -> value, in linear time (RFC 6265 section 5.4 shape).

    cookie-string = cookie-pair *( ";" SP cookie-pair )
    cookie-pair   = cookie-name "=" cookie-value
    cookie-value  = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )

Parsing, as browsers send it and as servers that follow RFC 6265 section 5.2 read it: split on
";", split each piece at its first "=", strip spaces and tabs around name and value, drop one
pair of DQUOTEs around a value, skip pieces without "=" or with an empty name; the first
occurrence of a name wins (RFC 6265 section 5.4 sends longer paths first, so the first is the
most specific). Values are opaque: no backslash or octal unescaping (that is what made the
standard library's `SimpleCookie` quadratic, CVE-2024-7592, and it is not RFC 6265 syntax).

Every step is one pass of a builtin over its piece, and only the first `max_bytes` of the header
are read (cut back to the last ";" before the cap, so no pair is read half), so the work per
request is bounded whatever the interpreter's patch level. This module imports nothing from
edgeward.
"""

from __future__ import annotations

from typing import Final

# Cookies past the first 32 KiB of the header are not read: the listener's default head limit
# (server.max_header_bytes, 32 KiB) already bounds a whole head to this, so with defaults every
# cookie is read; a larger configured head does not make cookie parsing unbounded.
MAX_COOKIE_BYTES: Final = 32 * 1024

_OWS: Final = " \t"


def parse_cookies(header: str, max_bytes: int = MAX_COOKIE_BYTES) -> dict[str, str]:
    """name -> value of a `Cookie` header value (see the module docstring for the rules)."""
    if len(header) > max_bytes:
        cut = header.rfind(";", 0, max_bytes + 1)
        header = header[:cut] if cut >= 0 else ""
    jar: dict[str, str] = {}
    for piece in header.split(";"):
        name, sep, value = piece.partition("=")
        if not sep:
            continue
        name = name.strip(_OWS)
        if not name or name in jar:
            continue
        value = value.strip(_OWS)
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        jar[name] = value
    return jar
