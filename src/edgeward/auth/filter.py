"""The `auth` filter: authentication methods in order, the first success wins (ORDER_AUTH).

For each request: the headers the gateway itself sets upstream (the consumer header, claim
headers, headers copied from a forward-auth answer) are first removed from what the client
sent; then each method is asked in turn. A method that finds no credential of its kind passes
to the next; one that admits ends the search; one that refuses is remembered and the next is
tried. When none admits, the first refusal is the answer (401 `unauthenticated` with a
WWW-Authenticate challenge per method, or the forward-auth service's own answer), or, when no
credential was found at all, 401 `unauthenticated` with every method's challenge.

An admitted request carries `req.consumer` (None when the method names nobody) and
`req.auth_result` = (method, "ok"); a refused one `req.auth_result` = (method or "none",
outcome) for metrics. A consumer outside `allow` gets 403 `forbidden`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar, Final

from edgeward.auth.config import AuthConfig
from edgeward.auth.consumer import Consumer
from edgeward.auth.method import NOBODY, Failure, Method, Outcome, Result
from edgeward.filters.api import ORDER_AUTH, Filter, Reply, Request, RequestResult

NO_CREDENTIALS: Final = "no credentials were given"


class AuthFilter(Filter):
    order: ClassVar[int] = ORDER_AUTH

    def __init__(self, cfg: AuthConfig, methods: Sequence[Method]) -> None:
        self.name = "auth"
        self.methods = tuple(methods)
        allow = cfg.allow
        self.allow_names = frozenset(allow.consumers) if allow is not None else frozenset()
        self.allow_groups = frozenset(allow.groups) if allow is not None else frozenset()
        self.restricted = allow is not None
        self.consumer_header = cfg.consumer_header.lower() if cfg.consumer_header else None
        owned: list[str] = [self.consumer_header] if self.consumer_header else []
        for m in self.methods:
            owned.extend(getattr(m, "owned_headers", tuple)())
            claims = getattr(getattr(m, "cfg", None), "claims_to_headers", None)
            if claims:
                owned.extend(h.lower() for h in claims.values())
        self.owned = tuple(dict.fromkeys(owned))
        challenges = [c for c in (m.challenge() for m in self.methods) if c]
        self.challenges = [("www-authenticate", c) for c in challenges]
        # (method, outcome) pairs made once: a request only points at one.
        self.results = {(m.kind, o): (m.kind, o) for m in self.methods
                        for o in ("ok", "unauthenticated", "forbidden", "denied",
                                  "auth_unavailable", "unknown_client_certificate")}
        self.none_result = ("none", "unauthenticated")

    def on_request(self, req: Request) -> RequestResult:
        headers = req.headers
        for name in self.owned:
            headers.remove(name)
        now = time.time()
        first: tuple[Method, Failure] | None = None
        for i, method in enumerate(self.methods):
            outcome = method.authenticate(req, now)
            if outcome is None:
                continue
            if isinstance(outcome, Consumer):
                return self._admit(req, method, outcome)
            if isinstance(outcome, Failure):
                if first is None:
                    first = (method, outcome)
                continue
            return self._resume(req, i, outcome, first, now)
        return self._refuse(req, first)

    async def _resume(self, req: Request, i: int, pending: object,
                      first: tuple[Method, Failure] | None, now: float) -> Reply | None:
        outcome: Outcome = await pending  # type: ignore[misc]
        while True:
            method = self.methods[i]
            if isinstance(outcome, Consumer):
                return self._admit(req, method, outcome)
            if isinstance(outcome, Failure) and first is None:
                first = (method, outcome)
            i += 1
            if i >= len(self.methods):
                return self._refuse(req, first)
            result: Result = self.methods[i].authenticate(req, now)
            if result is None or isinstance(result, Consumer | Failure):
                outcome = result
            else:
                outcome = await result

    def _admit(self, req: Request, method: Method, consumer: Consumer) -> Reply | None:
        if consumer is NOBODY:
            if self.restricted:
                req.auth_result = self.results[(method.kind, "forbidden")]
                return Reply.error(403, "forbidden", "the route admits named consumers only")
            req.auth_result = self.results[(method.kind, "ok")]
            return None
        req.consumer = consumer
        if self.restricted and not consumer.in_any(self.allow_names, self.allow_groups):
            req.auth_result = self.results[(method.kind, "forbidden")]
            return Reply.error(403, "forbidden", "the consumer is not allowed on this route")
        req.auth_result = self.results[(method.kind, "ok")]
        header = self.consumer_header
        if header is not None:
            req.headers.add(header, consumer.name)
        return None

    def _refuse(self, req: Request, first: tuple[Method, Failure] | None) -> Reply:
        if first is None:
            req.auth_result = self.none_result
            return Reply.error(401, "unauthenticated", NO_CREDENTIALS, self.challenges)
        method, failure = first
        if failure.code is None:  # the auth service's own answer
            req.auth_result = self.results[(method.kind, "denied")]
            return Reply(failure.status, failure.body, failure.fields)
        req.auth_result = self.results[(method.kind, failure.code)] if (
            (method.kind, failure.code) in self.results) else (method.kind, failure.code)
        fields: list[tuple[str, str]] = []
        if failure.status == 401:
            fields = [self._challenge(method, failure, c) for _, c in self.challenges]
        return Reply.error(failure.status, failure.code, failure.detail, fields)

    @staticmethod
    def _challenge(method: Method, failure: Failure, challenge: str) -> tuple[str, str]:
        # RFC 6750 §3: the Bearer challenge of a refused token says why.
        if failure.error and challenge == method.challenge():
            challenge += f', error="{failure.error}", error_description="{failure.detail}"'
        return ("www-authenticate", challenge)
