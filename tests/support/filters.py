"""Filters for tests, named in configs as `support.filters:ClassName` (tests/ is on sys.path).

Each records what happened to it in `EVENTS` (clear it at the start of a test): the filter's
name and the phase, so a test can tell which filters saw a request and in which order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from edgeward.filters import Filter, Reply, Request, Response
from edgeward.filters.api import RequestResult
from edgeward.http.fields import Headers

EVENTS: list[tuple[str, str]] = []


class Tagging(Filter):
    """Adds `x-seen: NAME` to responses (on_response) and records each phase it sees."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.tag = str(config.get("name", "tag"))

    def on_request(self, req: Request) -> RequestResult:
        EVENTS.append((self.tag, "request"))
        return None

    def on_response(self, req: Request, resp: Response) -> None:
        EVENTS.append((self.tag, "response"))
        resp.headers.add("x-seen", self.tag)

    def on_done(self, req: Request, resp: Response | None) -> None:
        EVENTS.append((self.tag, "done"))


class Replying(Filter):
    """Answers every request itself: 403 with a body and a header."""

    def on_request(self, req: Request) -> RequestResult:
        EVENTS.append(("replying", "request"))
        return Reply(403, b"not you", {"x-reply": "1"})


class Raising(Filter):
    """A filter with a bug, in the phase its config names (request, response, done, body)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.phase = str(config.get("phase", "request"))

    def on_request(self, req: Request) -> RequestResult:
        if self.phase == "request":
            raise RuntimeError("bug in on_request")
        if self.phase == "wrong_type":
            return "continue"  # type: ignore[return-value]
        return None

    def on_request_body(self, req: Request, data: bytes, end: bool) -> bytes | Reply:
        if self.phase == "request_body":
            raise RuntimeError("bug in on_request_body")
        return data

    def on_response(self, req: Request, resp: Response) -> None:
        if self.phase == "response":
            raise RuntimeError("bug in on_response")

    def on_done(self, req: Request, resp: Response | None) -> None:
        if self.phase == "done":
            raise RuntimeError("bug in on_done")


class Waiting(Filter):
    """Waits `seconds` (asyncio.sleep) in on_request, then lets the request go on, or answers
    `reply` when set; with `forever`, waits until cancelled."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.seconds = float(config.get("seconds", 1.0))
        self.reply = config.get("reply")
        self.forever = bool(config.get("forever", False))

    async def on_request(self, req: Request) -> Reply | None:
        EVENTS.append(("waiting", "request"))
        try:
            if self.forever:
                await asyncio.get_running_loop().create_future()
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            EVENTS.append(("waiting", "cancelled"))
            raise
        EVENTS.append(("waiting", "resumed"))
        if self.reply is not None:
            return Reply(int(self.reply), b"from the wait")
        return None

    def on_done(self, req: Request, resp: Response | None) -> None:
        EVENTS.append(("waiting", "done"))


class Failing(Filter):
    """An async on_request that raises after its wait."""

    async def on_request(self, req: Request) -> Reply | None:
        await asyncio.sleep(0.1)
        raise RuntimeError("bug after a wait")


class Trailing(Filter):
    """Reads and changes trailers in the body phases' last call: records the trailers it got
    as `x-saw` and adds `x-filter: 1` on both sides."""

    def on_request_body(self, req: Request, data: bytes, end: bool) -> bytes | Reply:
        if end:
            got = req.trailers.items() if req.trailers is not None else []
            EVENTS.append(("trailing", f"request {got}"))
            if req.trailers is None:
                req.trailers = Headers([])
            req.trailers.add("x-filter", "1")
        return data

    def on_response_body(self, req: Request, resp: Response, data: bytes, end: bool) -> bytes:
        if end:
            got = resp.trailers.items() if resp.trailers is not None else []
            EVENTS.append(("trailing", f"response {got}"))
            if resp.trailers is not None:
                resp.trailers.remove("x-secret")
                resp.trailers.add("x-filter", "1")
        return data
