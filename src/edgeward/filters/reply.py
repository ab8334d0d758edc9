"""The filters a route without an upstream ends in: `redirect:` and `respond:`.

They run last (ORDER_RESPOND), after every filter the route has (CORS, IP rules, limits), and
always answer: the route has nothing to forward to.
"""

from __future__ import annotations

from typing import ClassVar

from edgeward.filters.api import ORDER_RESPOND, Filter, Reply, Request, RequestResult
from edgeward.filters.rewrite import join


class Respond(Filter):
    """`respond:`: the same reply, made once, to every request."""

    order: ClassVar[int] = ORDER_RESPOND

    def __init__(self, reply: Reply) -> None:
        self.name = "respond"
        self.reply = reply

    def on_request(self, req: Request) -> RequestResult:
        return self.reply


class RedirectTarget:
    """Which parts of the URL a redirect replaces (None: keep the request's)."""

    __slots__ = ("scheme", "host", "port", "path", "prefix_from", "prefix_to", "strip_query")

    def __init__(self, *, scheme: str | None = None, host: str | None = None,
                 port: int | None = None, path: str | None = None,
                 prefix_from: str | None = None, prefix_to: str | None = None,
                 strip_query: bool = False) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.prefix_from = prefix_from
        self.prefix_to = prefix_to
        self.strip_query = strip_query


class Redirect(Filter):
    """`redirect:`: a 3xx whose Location is the request's URL with the configured parts
    replaced; the query stays unless `strip_query`."""

    order: ClassVar[int] = ORDER_RESPOND

    def __init__(self, status: int, target: RedirectTarget, https_only: bool) -> None:
        self.name = "redirect"
        self.status = status
        self.target = target
        self.https_only = https_only  # https_redirect: requests already on https pass

    def on_request(self, req: Request) -> RequestResult:
        if self.https_only and req.scheme == "https":
            return Reply.error(404, "route_not_found",
                               "this route redirects http requests to https only")
        reply = Reply(self.status)
        reply.fields = [(b"location", self.location(req).encode("latin-1"))]
        return reply

    def location(self, req: Request) -> str:
        t = self.target
        scheme = t.scheme or req.scheme
        host = t.host or req.host
        if ":" in host and not host.startswith("["):
            host = "[" + host + "]"
        port = t.port
        authority = host
        if port is not None:
            authority = f"{host}:{port}"
        elif scheme == req.scheme:
            request_port = _port(req.authority)
            if request_port:
                authority = host + ":" + request_port
        path = req.path
        if t.path is not None:
            path = t.path
        elif t.prefix_from is not None and t.prefix_to is not None:
            if path.startswith(t.prefix_from):
                path = join(t.prefix_to, path[len(t.prefix_from):])
        query = "" if t.strip_query else req.query_string
        location = scheme + "://" + authority + path
        return location + "?" + query if query else location


def _port(authority: bytes) -> str:
    """The port of a Host value ("" when none)."""
    text = authority.decode("latin-1")
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1:]
        return rest[1:] if rest.startswith(":") else ""
    _, sep, port = text.rpartition(":")
    return port if sep else ""
