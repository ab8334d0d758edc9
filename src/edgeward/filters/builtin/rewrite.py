"""Config of `strip_prefix` and `rewrite` (docs/filters.md, "Rewrites").

    strip_prefix: /api                                  # short for {prefix: /api}
    rewrite: {prefix: /api, to: /v2}                    # /api/x -> /v2/x
    rewrite: {regex: "^/u/(\\d+)$", to: "/users/\\1"}   # RE2, whole path, \\N groups
    rewrite: {host: internal.example}                   # alone or with a path rewrite

Patterns are RE2 (edgeward.routing.regex): one RE2 cannot compile (backreferences,
lookaround) is refused here with its key path, and `to` may only name groups the pattern has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from edgeward.filters.config import BuildContext, register
from edgeward.filters.rewrite import Rewrite, StripPrefix
from edgeward.http.headers import valid_host
from edgeward.routing.regex import compile_fullmatch
from edgeward.values import doc

# What a path may hold (as RequestHead.path accepts): visible ASCII, no query or fragment.
_PATH: Final = re.compile(r"/[!$&'()*+,;=:@%/A-Za-z0-9._~-]*")
_GROUP: Final = re.compile(r"\\(\d+)|\\g<(\d+)>")


def _path_problem(value: str) -> str | None:
    if _PATH.fullmatch(value) is None:
        return f"expected an absolute path of visible ASCII without query, got {value!r}"
    return None


@dataclass(frozen=True, kw_only=True)
class StripPrefixConfig:
    prefix: str = field(metadata=doc("removed from the start of matching paths; recorded in "
                                     "X-Forwarded-Prefix (Traefik StripPrefix)"))

    def check(self) -> list[tuple[str, str]]:
        reason = _path_problem(self.prefix)
        return [("prefix", reason)] if reason else []


@dataclass(frozen=True, kw_only=True)
class RewriteConfig:
    prefix: str | None = field(
        default=None, metadata=doc("path prefix replaced by `to` (Envoy prefix_rewrite)"))
    regex: str | None = field(
        default=None,
        metadata=doc("RE2 pattern the WHOLE path must match; the path becomes `to` with "
                     "\\N groups filled (Envoy regex_rewrite)"))
    to: str | None = field(default=None, metadata=doc("the replacement, with prefix or regex"))
    host: str | None = field(
        default=None, metadata=doc("Host sent upstream (HOST or HOST:PORT); null keeps it"))

    def check(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.prefix is not None and self.regex is not None:
            out.append(("regex", "give prefix or regex, not both"))
        if self.prefix is None and self.regex is None:
            if self.to is not None:
                out.append(("to", "`to` needs a prefix or a regex to replace"))
            if self.host is None:
                out.append(("", "give prefix + to, regex + to, or host"))
        elif self.to is None:
            out.append(("to", "required with prefix or regex"))
        if self.prefix is not None and (reason := _path_problem(self.prefix)):
            out.append(("prefix", reason))
        if self.regex is not None:
            out.extend(self._regex_problems(self.regex))
        elif self.to is not None and (reason := _path_problem(self.to)):
            out.append(("to", reason))
        if self.host is not None and not valid_host(self.host.encode("latin-1", "replace")):
            out.append(("host", f"not a host or host:port: {self.host!r}"))
        return out

    def _regex_problems(self, regex: str) -> list[tuple[str, str]]:
        try:
            matcher: Any = compile_fullmatch(regex)
        except ValueError as exc:
            return [("regex", str(exc))]
        if self.to is None:
            return []
        groups = matcher.__self__.groups
        literal = _GROUP.sub("", self.to)
        for m in _GROUP.finditer(self.to):
            number = int(m.group(1) or m.group(2))
            if number > groups:
                return [("to", f"refers to group {number}; the regex has {groups}")]
        if "\\" in literal:
            return [("to", "a backslash must start a group reference like \\1")]
        if not self.to.startswith("/") or _path_problem(literal) is not None:
            return [("to", f"expected an absolute path (with \\N groups), got {self.to!r}")]
        return []


def _strip_shorthand(raw: object) -> object:
    return raw if isinstance(raw, dict) else {"prefix": raw}


def _strip(config: StripPrefixConfig, ctx: BuildContext) -> StripPrefix:
    return StripPrefix(config.prefix)


def _rewrite(config: RewriteConfig, ctx: BuildContext) -> Rewrite:
    regex = compile_fullmatch(config.regex) if config.regex is not None else None
    return Rewrite(config.prefix, regex, config.to or "", config.host)


register("strip_prefix", StripPrefixConfig, _strip, shorthand=_strip_shorthand)
register("rewrite", RewriteConfig, _rewrite)
