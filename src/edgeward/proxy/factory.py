"""The exchange maker a listener calls for each request (one per worker)."""

from __future__ import annotations

from edgeward.http.message import RequestHead
from edgeward.http.stream import ServerStream, StreamHandler
from edgeward.proxy.context import ExchangeContext
from edgeward.proxy.exchange import Exchange


class ExchangeFactory(ExchangeContext):
    __slots__ = ()

    def create(self, stream: ServerStream, head: RequestHead) -> StreamHandler:
        return Exchange(stream, head, self)
