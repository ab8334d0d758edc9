"""Running a route's filter chain for one exchange: the request, response and done phases.

`FilterRun` is the base of `Exchange` (one object per request): it calls the filters of each
phase in order (`edgeward.proxy.chain` says which override which phase), waits for a filter
that returned an awaitable, and keeps what the response phases need: which filters the request
passed (those before the one that replied, every one when it was forwarded). A filter that
raises gets the request a 500 `filter_error` (or, once the response has begun, a reset); the
failure is counted and logged by the exchange context.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any, cast

from edgeward.filters.api import Filter, Reply
from edgeward.http.message import ResponseHead
from edgeward.proxy.attempts import Forwarding
from edgeward.proxy.chain import Chain
from edgeward.proxy.states import FILTERING

if TYPE_CHECKING:
    from edgeward.proxy.route import Route


class FilterRun(Forwarding):
    __slots__ = ("route", "chain", "at", "passed", "held", "resp")

    route: Route | None  # the matched route (None before routing, or when none matched)
    chain: Chain
    at: int          # the next request filter to run
    passed: int      # filters (by position in the chain) the request passed
    held: asyncio.Future[Any] | None  # a filter's wait
    resp: ResponseHead | None  # the response head sent (or being sent)

    def reply(self, reply: Reply) -> None:
        raise NotImplementedError

    def _forward(self) -> None:
        """The request filters let the request through: send it upstream."""
        raise NotImplementedError

    def _reset(self) -> None:
        raise NotImplementedError

    def _run_request_filters(self) -> None:
        chain = self.chain
        filters = chain.request
        head = self.head
        i = self.at
        n = len(filters)
        while i < n:
            f = filters[i]
            try:
                # Whatever a user's filter returned: checked below, never trusted (as object,
                # so the compiled build casts it to nothing).
                result = cast(object, f.on_request(head))
            except Exception as exc:  # noqa: BLE001 - a filter's bug answers 500, not more
                self.passed = chain.request_at[i]  # the filters before it see the 500
                self._filter_failed(f, exc)
                return
            i += 1
            if result is None:
                continue
            self.at = i
            self.passed = chain.request_at[i - 1]
            if type(result) is Reply:
                self.reply(result)
            elif inspect.isawaitable(result):
                self._wait(f, result)
            else:
                self._filter_failed(f, TypeError(f"on_request returned {result!r}"))
            return
        self.at = n
        self.passed = len(chain.filters)
        self._forward()

    def _wait(self, f: Filter, awaitable: Any) -> None:
        fut = asyncio.ensure_future(awaitable)
        self.held = fut

        def resume(done: asyncio.Future[Any]) -> None:
            self.held = None
            if self.state != FILTERING or done.cancelled():
                return
            exc = done.exception()
            if exc is not None:
                self._filter_failed(f, exc)
                return
            result = done.result()
            if result is None:
                self._run_request_filters()
            elif type(result) is Reply:
                self.reply(result)
            else:
                self._filter_failed(f, TypeError(f"on_request's wait gave {result!r}"))

        fut.add_done_callback(resume)
        route = self.route
        if route is not None and route.timeout is not None:
            self.down.set_deadline(self.started + route.timeout)

    def _request_body(self, data: bytes, end: bool) -> bytes | None:
        """Run the request body filters the request passed; None when one ended the exchange."""
        chain = self.chain
        head = self.head
        for f in chain.request_body:
            try:
                out = cast(object, f.on_request_body(head, data, end))  # checked below
            except Exception as exc:  # noqa: BLE001
                self._filter_failed(f, exc)
                return None
            if type(out) is Reply:
                self.reply(out)
                return None
            if not isinstance(out, bytes):
                self._filter_failed(f, TypeError(f"on_request_body returned {out!r}"))
                return None
            data = out
        return data

    def _filter_failed(self, f: Filter, exc: BaseException) -> None:
        self.factory.filter_failed(self.head.route_name, f, exc)
        self.fail("filter_error", f"filter {f.name or type(f).__name__} failed")

    def _response_filters(self, resp: ResponseHead) -> None:
        chain = self.chain
        filters = chain.response
        if not filters:
            return
        head = self.head
        at = chain.response_at
        passed = self.passed
        for i in range(len(filters) - 1, -1, -1):
            if at[i] < passed:
                try:
                    filters[i].on_response(head, resp)
                except Exception as exc:  # noqa: BLE001 - the response goes on unfiltered
                    self.factory.filter_failed(head.route_name, filters[i], exc)

    def _response_body(self, data: bytes, end: bool) -> bytes:
        chain = self.chain
        filters = chain.response_body
        head, resp = self.head, self.resp
        assert resp is not None
        at = chain.response_body_at
        passed = self.passed
        for i in range(len(filters) - 1, -1, -1):
            if at[i] < passed:
                try:
                    data = filters[i].on_response_body(head, resp, data, end)
                except Exception as exc:  # noqa: BLE001 - abort: the body is half sent
                    self.factory.filter_failed(head.route_name, filters[i], exc)
                    self._reset()
                    return b""
        return data

    def _done_filters(self, chain: Chain) -> None:
        head, resp, passed = self.head, self.resp, self.passed
        filters, at = chain.done, chain.done_at
        for i in range(len(filters) - 1, -1, -1):
            if at[i] < passed:
                try:
                    filters[i].on_done(head, resp)
                except Exception as exc:  # noqa: BLE001
                    self.factory.filter_failed(head.route_name, filters[i], exc)
