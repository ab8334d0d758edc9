"""Request path checks and normalisation (RFC 3986 §6.2.2, RFC 9112 §3.2).

Routes match the path the upstream will act on, so the path is normalised before routing and
forwarded normalised (nginx does the same; Envoy has `normalize_path` and `merge_slashes`):
percent-escapes of unreserved characters are decoded (`%69` -> `i`), the hex digits of the
other escapes upper-cased, `.` and `..` segments removed, and runs of `/` merged. `%2F` stays
encoded: decoding it would change which segments a path has.

A path with a character RFC 3986 does not allow in a path, a malformed escape, or a `..` that
would climb above the root is refused (`None`), whatever the policy. The query is not
normalised; it only must be visible ASCII without `#`.

Policies (`server.path_normalization`): `normalize` (default) forwards the normalised path;
`reject` refuses a request whose path normalisation would change; `off` leaves it as sent.
"""

from __future__ import annotations

from typing import Final

NORMALIZE: Final = "normalize"
REJECT: Final = "reject"
OFF: Final = "off"

# Characters of a path (RFC 3986 pchar and "/"), without and with "%"; of a query: visible
# ASCII but "#". Checked with `lstrip(chars)` (a C loop: a string of only those characters
# strips to nothing; a regex costs more to start than these short strings take to scan).
# Note `b"x" in data` is slow in CPython (it tries the needle as an int first, and pays for
# the exception): the hot path uses `find`.
_PATH_CHARS: Final = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                     b"-._~!$&'()*+,;=:@/")
_PCT_PATH_CHARS: Final = _PATH_CHARS + b"%"
_QUERY_CHARS: Final = bytes(c for c in range(0x21, 0x7F) if c != 0x23)
# Request target -> its path when `clean_target` holds, else "". Bounded: a flood of distinct
# targets only stops it from growing. Clients ask for the same targets again and again, and
# a cached path is the same str object each time (its hash, used by route matching, kept).
# Only targets up to _MAX_CACHED bytes are kept: at most ~1 MiB however targets are chosen.
_TARGETS: Final[dict[bytes, str]] = {}
_MAX_TARGETS: Final = 4096
_MAX_CACHED: Final = 256
_UNRESERVED: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX: Final = frozenset(b"0123456789ABCDEFabcdef")


def valid_query(query: bytes) -> bool:
    return not query.lstrip(_QUERY_CHARS)


def is_clean(path: bytes) -> bool:
    """True when `path` is valid and normalisation surely leaves it as it is: path characters
    but `%`, no empty segment, no segment starting with a dot (most paths; the others take
    the full check)."""
    return (path[:1] == b"/" and not path.lstrip(_PATH_CHARS)
            and path.find(b"//") < 0 and path.find(b"/.") < 0)


def clean_target(target: bytes) -> str | None:
    """The path of an origin-form `target` whose query is valid and whose path is clean (see
    `is_clean`), decoded; None when the target needs the full check."""
    known = _TARGETS.get(target)
    if known is not None:
        return known or None
    q = target.find(b"?")
    raw = target if q < 0 else target[:q]
    clean = is_clean(raw) and (q < 0 or valid_query(target[q + 1:]))
    path = raw.decode("ascii") if clean else ""
    if len(_TARGETS) < _MAX_TARGETS and len(target) <= _MAX_CACHED:
        _TARGETS[target] = path
    return path or None


def normalize(path: bytes) -> bytes | None:
    """The normalised form of an absolute path, or None when it is not a valid one."""
    if path[:1] != b"/" or path.lstrip(_PCT_PATH_CHARS):
        return None
    decoded = _decode_unreserved(path) if path.find(b"%") >= 0 else path
    if decoded is None:
        return None
    out: list[bytes] = []
    segments = decoded.split(b"/")
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if i == 0:
            continue  # before the leading "/"
        if segment == b"." or segment == b"":
            if i == last:
                out.append(b"")  # a trailing "/", "/." or "//" keeps one trailing slash
            continue
        if segment == b"..":
            if not out:
                return None  # above the root
            out.pop()
            if i == last:
                out.append(b"")
            continue
        out.append(segment)
    return b"/" + b"/".join(out)


def _decode_unreserved(path: bytes) -> bytes | None:
    """Decode escapes of unreserved characters and upper-case the rest; None if malformed."""
    out = bytearray()
    i, n = 0, len(path)
    while i < n:
        c = path[i]
        if c != 0x25:  # "%"
            out.append(c)
            i += 1
            continue
        if i + 3 > n:
            return None
        h1, h2 = path[i + 1], path[i + 2]
        if h1 not in _HEX or h2 not in _HEX:
            return None
        value = int(path[i + 1:i + 3], 16)
        if value in _UNRESERVED:
            out.append(value)
        else:
            out += b"%" + path[i + 1:i + 3].upper()
        i += 3
    return bytes(out)
