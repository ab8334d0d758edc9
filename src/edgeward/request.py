"""What the governance core may read of a request: a small read-only view.

The HTTP/1.1, HTTP/2 and WebSocket shells each provide an object with this shape, so route
matching, gray-split rules, hash keys and rate-limit keys never depend on a wire format.
Names passed to `header`, `cookie` and `query` are matched case-insensitively for headers and
exactly for cookies and query parameters; each returns the first value or None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edgeward.auth.consumer import Consumer


class RequestView(Protocol):
    @property
    def method(self) -> str: ...          # "GET"

    @property
    def host(self) -> str: ...            # lower-case host without port: "api.example.com"

    @property
    def path(self) -> str: ...            # decoded-as-sent path without query: "/orders/7"

    @property
    def client_ip(self) -> str: ...       # the peer address (or the trusted X-Forwarded-For hop)

    @property
    def consumer(self) -> Consumer | None: ...  # set by authentication, never by the client

    def header(self, name: str) -> str | None: ...

    def cookie(self, name: str) -> str | None: ...

    def query(self, name: str) -> str | None: ...


class SimpleRequest:
    """A plain RequestView for tests and for in-process use of the governance core."""

    __slots__ = ("method", "host", "path", "client_ip", "consumer", "_headers", "_cookies",
                 "_query")

    def __init__(
        self,
        method: str = "GET",
        host: str = "localhost",
        path: str = "/",
        client_ip: str = "127.0.0.1",
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        consumer: Consumer | None = None,
    ) -> None:
        self.method = method
        self.host = host
        self.path = path
        self.client_ip = client_ip
        self.consumer = consumer
        self._headers = {k.lower(): v for k, v in (headers or {}).items()}
        self._cookies = dict(cookies or {})
        self._query = dict(query or {})

    def header(self, name: str) -> str | None:
        return self._headers.get(name.lower())

    def cookie(self, name: str) -> str | None:
        return self._cookies.get(name)

    def query(self, name: str) -> str | None:
        return self._query.get(name)
