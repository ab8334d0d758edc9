"""Invalidation rules: a successful write to a path purges what the rule names, with the
path's `{name}` segments filled in.

    purge_on:
      - path: /api/users/{id}          # a PUT/POST/PATCH/DELETE answered 2xx or 3xx here
        keys: [/api/users/{id}, /api/users]   # purges these paths (every query and variant)
        prefixes: [/api/users/{id}/]          # every stored path under these
        tags: [user-{id}]                     # every response tagged so

Paths in keys and prefixes are on the request's host (a key is `host/path`, edgeward.cache.key).
"""

from __future__ import annotations

import re
from typing import Final

from edgeward.cache.key import base_of
from edgeward.http.message import RequestHead

_PARAM: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def compile_template(path: str) -> re.Pattern[str]:
    """`/api/users/{id}` -> a pattern matching one segment per `{name}`."""
    out: list[str] = []
    at = 0
    for m in _PARAM.finditer(path):
        out.append(re.escape(path[at:m.start()]))
        out.append(f"(?P<{m.group(1)}>[^/]+)")
        at = m.end()
    out.append(re.escape(path[at:]))
    return re.compile("".join(out))


def template_names(text: str) -> set[str]:
    return set(_PARAM.findall(text))


def fill(template: str, values: dict[str, str]) -> str:
    return _PARAM.sub(lambda m: values.get(m.group(1), ""), template)


class PurgeRule:
    __slots__ = ("pattern", "methods", "keys", "prefixes", "tags")

    def __init__(self, path: str, methods: tuple[str, ...], keys: tuple[str, ...],
                 prefixes: tuple[str, ...], tags: tuple[str, ...]) -> None:
        self.pattern = compile_template(path)
        self.methods = frozenset(m.upper() for m in methods)
        self.keys = keys
        self.prefixes = prefixes
        self.tags = tags

    def targets(self, req: RequestHead) -> list[tuple[str, str]]:
        """The (kind, argument) purges a successful `req` asks for ([] when it does not
        match)."""
        if req.method not in self.methods:
            return []
        m = self.pattern.fullmatch(req.path)
        if m is None:
            return []
        values = m.groupdict()
        host = req.host
        out: list[tuple[str, str]] = []
        for key in self.keys:
            path = fill(key, values)
            out.append(("key", base_of(host, path, "")))
            out.append(("prefix", base_of(host, path, "") + "?"))
        for prefix in self.prefixes:
            out.append(("prefix", base_of(host, fill(prefix, values), "")))
        for tag in self.tags:
            out.append(("tag", fill(tag, values)))
        return out
