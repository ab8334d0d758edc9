"""Config of a route's `redirect:` and `respond:` (docs/filters.md, "Redirects and replies").

    redirect: {path_prefix: /new, status: 308}     # also scheme, host, port, path, strip_query
    redirect: {https_redirect: true}
    respond: {status: 200, body: "pong", headers: {content-type: text/plain}}
    respond: {status: 503, file: /etc/edgeward/maintenance.html}

A route has exactly one of upstream, split, redirect and respond (config/schema.py). These are
not filter kinds: compose.py ends such a route's chain with the filter they make.
"""

from __future__ import annotations

import mimetypes
import os
from dataclasses import dataclass, field
from typing import Final, Literal

from edgeward.filters.api import Reply
from edgeward.filters.builtin.headers import _RESPONSE_OWNED, _name_problem
from edgeward.filters.builtin.rewrite import _path_problem
from edgeward.filters.reply import Redirect, RedirectTarget, Respond
from edgeward.http.fields import check_value
from edgeward.http.headers import valid_host
from edgeward.values import Size, doc

# Envoy's redirect response_code defaults to 301 MOVED_PERMANENTLY (nginx `return 301` and
# `rewrite ... permanent` too).
DEFAULT_REDIRECT_STATUS: Final = 301
# nginx `return 200 "text"` answers 200; a direct reply is most often a health or ping answer.
DEFAULT_RESPOND_STATUS: Final = 200
# A body read from a file at load is kept in memory by every worker: 1 MiB is room for a
# maintenance page with inline assets, and keeps a mistaken path to a large file from costing
# the workers much (Envoy's direct_response body is capped at 4 KiB by default, max_direct_
# response_body_size_bytes; pages need more).
DEFAULT_MAX_FILE_SIZE: Final = 1 << 20
# nginx default_type is text/plain; the charset says how to read `body:` text (YAML is UTF-8).
DEFAULT_BODY_TYPE: Final = "text/plain; charset=utf-8"

_NO_BODY: Final = frozenset({204, 304})


@dataclass(frozen=True, kw_only=True)
class RedirectConfig:
    status: int = field(
        default=DEFAULT_REDIRECT_STATUS,
        metadata=doc("301, 302, 303, 307 or 308 (307/308 keep the method and body)"))
    scheme: Literal["http", "https"] | None = field(
        default=None, metadata=doc("scheme of the Location; null keeps the request's"))
    host: str | None = field(default=None, metadata=doc("host of the Location; null keeps it"))
    port: int | None = field(
        default=None,
        metadata=doc("port of the Location; null keeps the request's, or none when the "
                     "scheme changes (its default port)"))
    path: str | None = field(default=None, metadata=doc("the whole path of the Location"))
    path_prefix: str | None = field(
        default=None,
        metadata=doc("replaces the route's match.path_prefix in the path (Envoy "
                     "prefix_rewrite)"))
    strip_query: bool = field(
        default=False, metadata=doc("drop the query (kept by default, as Envoy and nginx)"))
    https_redirect: bool = field(
        default=False,
        metadata=doc("scheme https, default port (Envoy https_redirect); https requests are "
                     "not redirected again"))

    def check(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.status not in (301, 302, 303, 307, 308):
            out.append(("status", f"must be one of 301, 302, 303, 307, 308, got {self.status}"))
        if self.path is not None and self.path_prefix is not None:
            out.append(("path_prefix", "give path or path_prefix, not both"))
        for key in ("path", "path_prefix"):
            value = getattr(self, key)
            if value is not None and (reason := _path_problem(value)):
                out.append((key, reason))
        if self.host is not None and (reason := _host_problem(self.host)):
            out.append(("host", reason))
        if self.port is not None and not 0 < self.port < 65536:
            out.append(("port", f"must be 1-65535, got {self.port}"))
        if self.https_redirect and self.scheme == "http":
            out.append(("scheme", "https_redirect sends to https; drop scheme: http"))
        if not any((self.scheme, self.host, self.port, self.path, self.path_prefix,
                    self.strip_query, self.https_redirect)):
            out.append(("", "give what to change: scheme, host, port, path, path_prefix, "
                            "strip_query or https_redirect"))
        return out

    def build(self, route_prefix: str | None) -> Redirect:
        target = RedirectTarget(
            scheme="https" if self.https_redirect else self.scheme, host=self.host,
            port=self.port, path=self.path,
            prefix_from=route_prefix if self.path_prefix is not None else None,
            prefix_to=self.path_prefix, strip_query=self.strip_query)
        return Redirect(self.status, target, self.https_redirect)


def _host_problem(host: str) -> str | None:
    if host.startswith("["):
        ok = host.endswith("]") and valid_host(host.encode("latin-1", "replace"))
    elif ":" in host:
        return f"give the port under port:, not in host ({host!r})"
    else:
        ok = valid_host(host.encode("latin-1", "replace"))
    return None if ok else f"not a host name or IP address: {host!r}"


@dataclass(frozen=True, kw_only=True)
class RespondConfig:
    status: int = field(default=DEFAULT_RESPOND_STATUS, metadata=doc("200-599"))
    body: str | None = field(default=None, metadata=doc("the body, as UTF-8 text"))
    file: str | None = field(
        default=None, metadata=doc("or a file whose bytes are the body (read at load)"))
    max_file_size: Size = field(
        default=DEFAULT_MAX_FILE_SIZE, metadata=doc("largest file accepted"))
    headers: dict[str, str] = field(
        default_factory=dict,
        metadata=doc("fields of the reply; Content-Type defaults to text/plain for body, "
                     "by extension for file"))

    def check(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if not 200 <= self.status <= 599:
            out.append(("status", f"must be 200-599, got {self.status}"))
        if self.body is not None and self.file is not None:
            out.append(("file", "give body or file, not both"))
        if self.status in _NO_BODY and (self.body or self.file):
            out.append(("body", f"a {self.status} response has no body"))
        if self.file is not None:
            try:
                self.read_file()
            except ValueError as exc:
                out.append(("file", str(exc)))
        for name, value in self.headers.items():
            found = _name_problem(f"headers.{name}", name, _RESPONSE_OWNED)
            out.extend(found)
            if not found:
                try:
                    check_value(value)
                except ValueError as exc:
                    out.append((f"headers.{name}", str(exc)))
        return out

    def read_file(self) -> bytes:
        path = self.file
        assert path is not None
        try:
            size = os.stat(path).st_size
            if size > self.max_file_size:
                raise ValueError(f"{path} is {size} bytes, over max_file_size "
                                 f"({self.max_file_size})")
            with open(path, "rb") as f:
                return f.read(self.max_file_size + 1)[:self.max_file_size]
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None

    def build(self) -> Respond:
        body = self.read_file() if self.file is not None else (self.body or "").encode()
        headers = dict(self.headers)
        if body and not any(n.lower() == "content-type" for n in headers):
            guessed = mimetypes.guess_type(self.file)[0] if self.file is not None else None
            headers["content-type"] = (guessed or "application/octet-stream" if self.file
                                       else DEFAULT_BODY_TYPE)
        return Respond(Reply(self.status, body, headers))
