"""The HTTPS requests of the ACME client: stdlib `http.client`, run in a worker thread.

Control plane only (a handful of requests per certificate per 60 days), so a thread per
request is simpler than a second HTTP client on the event loop, and the request path never
shares anything with it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Each ACME request must finish within this (certbot's default HTTP timeout is 45 s).
DEFAULT_TIMEOUT = 30.0
# Largest response read: a certificate chain or a directory is a few KiB.
MAX_BODY = 1024 * 1024


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    links: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


class TransportError(Exception):
    """The ACME server could not be reached or did not answer in time."""


def _request(method: str, url: str, body: bytes | None, content_type: str | None,
             context: ssl.SSLContext, timeout: float) -> Response:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise TransportError(f"not an https URL: {url!r}")
    conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout,
                                       context=context)
    headers = {"User-Agent": "edgeward-acme", "Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(method, target or "/", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read(MAX_BODY)
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data,
                        resp.headers.get_all("Link") or [])
    except (OSError, http.client.HTTPException) as exc:
        raise TransportError(f"{method} {url}: {exc}") from None
    finally:
        conn.close()


class Transport:
    """Async front of `_request`; one instance per ACME directory."""

    def __init__(self, context: ssl.SSLContext, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.context = context
        self.timeout = timeout

    async def get(self, url: str) -> Response:
        return await asyncio.to_thread(_request, "GET", url, None, None, self.context,
                                       self.timeout)

    async def head(self, url: str) -> Response:
        return await asyncio.to_thread(_request, "HEAD", url, None, None, self.context,
                                       self.timeout)

    async def post(self, url: str, body: bytes) -> Response:
        return await asyncio.to_thread(_request, "POST", url, body, "application/jose+json",
                                       self.context, self.timeout)
