"""Header values with variables: `"${client_ip}"`, `"tenant-${header:x-tenant}"`.

A template is parsed once, when the config is compiled, into literal parts and variable
readers; expanding it per request is a join. A value with no variable is a constant string.
Variables (nginx's `$remote_addr`, `$request_id`, `$host`, `$http_NAME` under other names):

  ${client_ip}      the client (after server.trusted_proxies)
  ${request_id}     the request's X-Request-Id
  ${route}          the route's name
  ${upstream}       the upstream the route (or, in response phases, its split) sends to
  ${host}           the request's host, lower case, without port
  ${method} ${path} ${scheme}
  ${header:NAME}    the first value of a request header ("" when absent)

`$$` writes a literal `$`. Anything else after `$` is refused when the config is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from edgeward.http.message import RequestHead

Reader = Callable[[RequestHead], str]

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _client_ip(req: RequestHead) -> str:
    return req.client_ip


def _request_id(req: RequestHead) -> str:
    return req.request_id


def _route(req: RequestHead) -> str:
    return req.route_name


def _upstream(req: RequestHead) -> str:
    return req.upstream or ""


def _host(req: RequestHead) -> str:
    return req.host


def _method(req: RequestHead) -> str:
    return req.method


def _path(req: RequestHead) -> str:
    return req.path


def _scheme(req: RequestHead) -> str:
    return req.scheme


VARIABLES: Final[dict[str, Reader]] = {
    "client_ip": _client_ip, "request_id": _request_id, "route": _route,
    "upstream": _upstream, "host": _host, "method": _method, "path": _path, "scheme": _scheme,
}


class _Header:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, req: RequestHead) -> str:
        return req.headers.get(self.name) or ""


class Template:
    """A parsed value: `constant` when it has no variable, else parts to join per request."""

    __slots__ = ("text", "constant", "literals", "readers", "trusted")

    def __init__(self, text: str, literals: list[str], readers: list[Reader]) -> None:
        self.text = text
        self.literals = literals  # len(readers) + 1 pieces around the variables
        self.readers = readers
        self.constant: str | None = literals[0] if not readers else None
        # Only variables whose values the gateway checked (no request header's value).
        self.trusted = not any(isinstance(r, _Header) for r in readers)

    def expand(self, req: RequestHead) -> str:
        constant = self.constant
        if constant is not None:
            return constant
        literals = self.literals
        readers = self.readers
        out = [literals[0]]
        for i in range(len(readers)):
            out.append(readers[i](req))
            out.append(literals[i + 1])
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def parse(text: str) -> Template:
    """Parse a template; ValueError names the first thing wrong with it."""
    literals: list[str] = []
    readers: list[Reader] = []
    piece: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c != "$":
            piece.append(c)
            i += 1
            continue
        if text.startswith("$$", i):
            piece.append("$")
            i += 2
            continue
        if not text.startswith("${", i):
            raise ValueError(f"a $ must start ${{NAME}} (or be written $$) in {text!r}")
        end = text.find("}", i)
        if end < 0:
            raise ValueError(f"unclosed ${{ in {text!r}")
        readers.append(variable(text[i + 2:end]))
        literals.append("".join(piece))
        piece = []
        i = end + 1
    literals.append("".join(piece))
    return Template(text, literals, readers)


def variable(name: str) -> Reader:
    found = VARIABLES.get(name)
    if found is not None:
        return found
    if name.startswith("header:"):
        header = name[7:]
        if _TOKEN.fullmatch(header) is None:
            raise ValueError(f"${{{name}}}: {header!r} is not a header name")
        return _Header(header.lower())
    known = ", ".join(f"${{{v}}}" for v in [*VARIABLES, "header:NAME"])
    raise ValueError(f"unknown variable ${{{name}}} (known: {known})")
