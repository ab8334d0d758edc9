"""The `forward` method: ask an auth service (Traefik forwardAuth, Envoy ext_authz HTTP,
nginx auth_request).

The check is a GET of `path` on a named upstream (so the data plane's pools, balancer and
breaker apply) carrying the selected request headers and, as Traefik does, the original
request as X-Forwarded-Method, -Uri, -Host, -Proto and -For. A 2xx admits: the selected answer
headers are copied onto the upstream request (client copies were removed first) and
`consumer_header` of the answer names the consumer. Any other status is the client's answer,
with the service's body and headers (a 401 challenge, a 302 to a login page). No answer at all
(connect failure, timeout, reset, breaker open) follows `failure_mode`: deny (503
auth_unavailable) unless `allow`.

Decisions are cached by `cache.key` for `cache.ttl` (the feature Envoy's ext_authz lacks),
both admissions and refusals below 500; the key's values are digested first.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Final

from edgeward.auth.config import ForwardConfig, check_consumer_name
from edgeward.auth.consumer import Consumer
from edgeward.auth.context import AuthContext, SubrequestFailed, SubResponse
from edgeward.auth.method import NOBODY, Failure, Method, Outcome, Result
from edgeward.auth.tokens import TokenCache
from edgeward.filters.api import Request
from edgeward.http.fields import RESERVED
from edgeward.routing.keys import KeySpec, parse_key

log = logging.getLogger("edgeward.auth")

# Fields of a refusal that are not passed on: framing and hop-by-hop ones (the gateway frames
# its reply) and the service's own identification of the message.
_NOT_PASSED: Final = RESERVED | {"date", "server", "x-request-id", "content-type"}


class Admitted:
    __slots__ = ("consumer", "fields")

    def __init__(self, consumer: Consumer, fields: list[tuple[str, str]]) -> None:
        self.consumer = consumer
        self.fields = fields


class ForwardMethod(Method):
    kind = "forward"

    def __init__(self, cfg: ForwardConfig, ctx: AuthContext) -> None:
        if cfg.upstream not in ctx.upstreams:
            raise ValueError(f"forward.upstream: no upstream named {cfg.upstream!r}")
        self.cfg = cfg
        self.ctx = ctx
        self.send = tuple(h.lower() for h in cfg.request_headers)
        self.copy = tuple(h.lower() for h in cfg.response_headers)
        self.consumer_header = cfg.consumer_header.lower() if cfg.consumer_header else None
        cache = cfg.cache
        self.keys: tuple[KeySpec, ...] = tuple(parse_key(k) for k in cache.key) if cache else ()
        self.ttl = cache.ttl if cache is not None else 0.0
        self.cache: TokenCache[Admitted | Failure] | None = (
            TokenCache(cache.max_entries) if cache is not None else None)
        self.asked = 0  # checks sent to the service (for tests and the admin view)

    def owned_headers(self) -> tuple[str, ...]:
        return self.copy

    def _key(self, req: Request) -> str | None:
        parts: list[str] = []
        for spec in self.keys:
            value = spec.extract(req, req.route_name)
            if value is None:
                return None
            parts.append(value)
        return hashlib.blake2b("\0".join(parts).encode("utf-8", "surrogatepass"),
                               digest_size=16).hexdigest()

    def authenticate(self, req: Request, now: float) -> Result:
        cache = self.cache
        key = None
        if cache is not None:
            key = self._key(req)
            if key is not None:
                hit = cache.get(key, now, 0)
                if hit is not None:
                    return _apply(req, hit)
        return self._ask(req, key, now)

    async def _ask(self, req: Request, key: str | None, now: float) -> Outcome:
        cfg = self.cfg
        self.asked += 1
        try:
            resp = await self.ctx.subrequest(cfg.upstream, "GET", cfg.path,
                                             self._fields(req), cfg.timeout)
        except SubrequestFailed as exc:
            log.warning("forward auth %s%s: %s (failure_mode %s)", cfg.upstream, cfg.path,
                        exc, cfg.failure_mode)
            if cfg.failure_mode == "allow":
                return NOBODY
            return Failure(503, "auth_unavailable", "the authentication service did not answer")
        decision = self._decide(resp)
        if key is not None and self.cache is not None and resp.status < 500:
            self.cache.put(key, decision, -math.inf, now + self.ttl, 0)
        return _apply(req, decision)

    def _fields(self, req: Request) -> list[tuple[str, str]]:
        fields: list[tuple[str, str]] = []
        headers = req.headers
        for name in self.send:
            for value in headers.get_all(name):
                fields.append((name, value))
        fields.append(("x-forwarded-method", req.method))
        fields.append(("x-forwarded-uri", req.target.decode("latin-1")))
        fields.append(("x-forwarded-host", req.authority.decode("latin-1")))
        fields.append(("x-forwarded-proto", req.scheme))
        fields.append(("x-forwarded-for", req.client_ip))
        return fields

    def _decide(self, resp: SubResponse) -> Admitted | Failure:
        if 200 <= resp.status < 300:
            fields: list[tuple[str, str]] = []
            consumer: Consumer = NOBODY
            for name, value in resp.headers:
                lname = name.lower()
                if lname in self.copy:
                    fields.append((lname, value))
                if lname == self.consumer_header and check_consumer_name(value) is None:
                    known = self.ctx.consumers.index.by_name.get(value)
                    consumer = known or Consumer(value, configured=False)
            return Admitted(consumer, fields)
        kept = [(n, v) for n, v in resp.headers if n.lower() not in _NOT_PASSED]
        content_type = next((v for n, v in resp.headers if n.lower() == "content-type"), None)
        if content_type is not None:
            kept.insert(0, ("content-type", content_type))
        status = resp.status if 200 <= resp.status <= 599 else 502
        return Failure(status, None, "the authentication service refused the request",
                       fields=kept, body=resp.body)


def _apply(req: Request, decision: Admitted | Failure) -> Outcome:
    if isinstance(decision, Failure):
        return decision
    for name, value in decision.fields:
        req.headers.add(name, value)
    return decision.consumer
