"""Filters the filter-API tests load by name (`python: "sample_filters:NAME"`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from edgeward.filters import ORDER_AUTH, ORDER_CORS, STREAMED, Filter, Reply, Request, Response


class Broken(Filter):
    def on_request(self, req: Request) -> None:
        raise RuntimeError("this filter is broken")


class ReturnsNonsense(Filter):
    def on_request(self, req: Request) -> Any:
        return 42


class Waits(Filter):
    """Waits `seconds` (from its config mapping) before letting the request through."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.seconds = float(config.get("seconds", 0.1))

    async def on_request(self, req: Request) -> Reply | None:
        await asyncio.sleep(self.seconds)
        req.headers.set("x-waited", str(self.seconds))
        return None


class Gate(Filter):
    """An authentication-like filter: runs before rate limits whatever its place in the list,
    and refuses requests without `x-pass`."""

    order = ORDER_AUTH

    def on_request(self, req: Request) -> Reply | None:
        if req.headers.get("x-pass") is None:
            return Reply.error(401, "no_pass", headers={"www-authenticate": "Pass"})
        return None


class Stamp(Filter):
    """Adds `x-stamp` to every response it sees, local replies included; it runs first (as
    CORS does), so the replies of every filter after it pass through it."""

    order = ORDER_CORS

    def on_response(self, req: Request, resp: Response) -> None:
        resp.headers.set("x-stamp", req.route_name)


class Upper(Filter):
    """Upper-cases the request body and the response body as they stream."""

    def on_request_body(self, req: Request, data: bytes, end: bool) -> bytes:
        return data.upper()

    def on_response(self, req: Request, resp: Response) -> None:
        resp.body_length = STREAMED  # the body is rewritten: its length is not known ahead

    def on_response_body(self, req: Request, resp: Response, data: bytes, end: bool) -> bytes:
        return data.upper()


@dataclass(frozen=True, kw_only=True)
class CountConfig:
    header: str = "x-count"


class Count(Filter):
    """Counts requests in its own state (one instance per definition, shared by routes)."""

    def __init__(self, config: CountConfig) -> None:
        self.header = config.header
        self.seen = 0

    def on_request(self, req: Request) -> None:
        self.seen += 1

    def on_response(self, req: Request, resp: Response) -> None:
        resp.headers.set(self.header, str(self.seen))


class Rewrite(Filter):
    """Sends the request to another path and upstream."""

    def on_request(self, req: Request) -> None:
        req.path = "/echo"
        req.query_string = "rewritten=1"
        req.upstream = "other"
