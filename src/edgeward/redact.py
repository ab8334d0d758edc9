"""Keep secrets out of what the gateway shows: the config view, problem messages and logs.

One policy, used everywhere the gateway echoes configuration:

- A key named like a secret (`token`, `password`, `secret`, `authorization`, `api_keys`, or
  ending in `_token`, `_password`, `_secret`, `_key`, `-key`, `_hash`, ...) never
  has its value shown (consumers' credentials, a JWT `secret`, inline keys included):
  `is_secret_key`, and `redact_value` for a problem message about such a key.
- A URL anywhere in a value or a message (`redis://user:pw@host/0?password=x`, an OTLP endpoint
  `https://tok@collector:4318/?token=x`) keeps its scheme, host, port and path; the password of
  its userinfo (the whole userinfo when it is a single word, which is how tokens are passed),
  the value of every query parameter and the fragment are replaced: `redact_url`, and
  `redact_text` for every URL inside free text.
- `redact_config` applies both to parsed YAML for `GET /config`.

Every scan is one left-to-right pass over the text. This module imports nothing from edgeward.
"""

from __future__ import annotations

import string
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit, urlunsplit

REDACTED: Final = "<redacted>"

_SECRET_NAMES: Final = frozenset({
    "token", "password", "passwd", "secret", "credentials", "authorization",
    "proxy_authorization", "apikey", "api_keys", "apikeys",
})
_SECRET_SUFFIXES: Final = ("_token", "_password", "_secret", "_key", "_credentials", "_hash")
_SCHEME_CHARS: Final = frozenset(string.ascii_letters + string.digits + "+.-")
_URL_END: Final = frozenset(" \t\r\n'\"<>`")


def is_secret_key(name: str) -> bool:
    """Whether a config key (or header name) names a secret: its value is never shown."""
    normal = name.lower().replace("-", "_")
    return normal in _SECRET_NAMES or normal.endswith(_SECRET_SUFFIXES)


def path_is_secret(path: str) -> bool:
    """Whether a key path (`admin.token`, `routes[2].match.headers.x-api-key`) ends in a
    secret key."""
    last = path.rsplit(".", 1)[-1].split("[", 1)[0]
    return bool(last) and is_secret_key(last)


def redact_url(url: str) -> str:
    """`url` without the password (or single-word userinfo), query values and fragment."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return REDACTED
    if not parts.scheme or not parts.netloc:
        return url
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        userinfo = f"{user}:{REDACTED}" if colon else REDACTED
        netloc = f"{userinfo}@{hostport}"
    else:
        netloc = parts.netloc
    query = "&".join(
        f"{pair.partition('=')[0]}={REDACTED}" for pair in parts.query.split("&") if pair
    ) if parts.query else ""
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, fragment))


def redact_text(text: str) -> str:
    """`text` with every `scheme://...` in it passed through `redact_url`."""
    if "://" not in text:
        return text
    out: list[str] = []
    done = 0
    mark = text.find("://")
    while mark >= 0:
        start = mark
        while start > done and text[start - 1] in _SCHEME_CHARS:
            start -= 1
        end = mark + 3
        while end < len(text) and text[end] not in _URL_END:
            end += 1
        if start < mark:
            out.append(text[done:start])
            out.append(redact_url(text[start:end]))
            done = end
        mark = text.find("://", end)
    out.append(text[done:])
    return "".join(out)


def redact_value(reason: str, value: object) -> str:
    """A problem message about a secret key's `value`, with that value replaced."""
    if value is None or isinstance(value, bool):
        return reason
    for shown in dict.fromkeys((repr(value), str(value))):
        if shown:
            reason = reason.replace(shown, REDACTED)
    return reason


def redact_config(raw: Any) -> Any:
    """Parsed YAML with secret keys' values replaced and every URL redacted."""
    if isinstance(raw, dict):
        return {k: (REDACTED if isinstance(k, str) and is_secret_key(k) and v is not None
                    else redact_config(v)) for k, v in raw.items()}
    if isinstance(raw, list):
        return [redact_config(v) for v in raw]
    if isinstance(raw, str):
        return redact_text(raw)
    return raw
