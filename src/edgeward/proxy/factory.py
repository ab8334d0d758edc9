"""The exchange makers a listener calls for each request (one per worker, and one per listener
with routes of its own)."""

from __future__ import annotations

from typing import Final

from edgeward.http.message import RequestHead
from edgeward.http.stream import HandlerFactory, ServerStream, StreamHandler
from edgeward.proxy.context import ExchangeContext
from edgeward.proxy.exchange import Exchange
from edgeward.proxy.snapshot import Snapshot

# RFC 8555 8.3: where an ACME CA fetches its HTTP-01 challenge answers.
ACME_CHALLENGE_PREFIX: Final = "/.well-known/acme-challenge/"


class ExchangeFactory(ExchangeContext):
    __slots__ = ()

    def create(self, stream: ServerStream, head: RequestHead) -> StreamHandler:
        return Exchange(stream, head, self)


class ListenerFactory(HandlerFactory):
    """A listener whose requests go to its own routes before (or instead of) the config's:
    ACME HTTP-01 answers (`acme`: the paths under ACME_CHALLENGE_PREFIX) and the https
    redirect (`only`: every other request). Exchanges share the worker's context (telemetry,
    tracer, settings); only the snapshot they route on differs."""

    __slots__ = ("base", "acme", "only")

    def __init__(self, base: ExchangeFactory, *, acme: Snapshot | None = None,
                 only: Snapshot | None = None) -> None:
        self.base = base
        self.acme = acme
        self.only = only

    def create(self, stream: ServerStream, head: RequestHead) -> StreamHandler:
        ex = Exchange(stream, head, self.base)
        acme = self.acme
        if acme is not None and head.path.startswith(ACME_CHALLENGE_PREFIX):
            ex.snapshot = acme
        elif self.only is not None:
            ex.snapshot = self.only
        return ex
