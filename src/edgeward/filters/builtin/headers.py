"""Config of `request_headers` and `response_headers` (docs/filters.md, "Headers").

    request_headers: {set: {x-env: prod}, add: {x-via: "${route}"}, remove: [x-debug]}

Names must be header tokens; framing and hop-by-hop fields (Content-Length, Transfer-Encoding,
Connection, ...) belong to the codecs and are refused, as are the fields the gateway owns
outright: X-Request-Id (both ways) and traceparent (requests) identify the request in logs and
traces, and Host is changed with `rewrite: {host: ...}` so the authority stays consistent.
X-Forwarded-For/-Proto/-Host may be set or removed: the gateway adds its own before the
route's filters run, so a filter's value wins (nginx `proxy_set_header X-Forwarded-For`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeward.filters.config import BuildContext, register
from edgeward.filters.headers import FieldOp, HeaderOps, RequestHeaders, ResponseHeaders
from edgeward.filters.template import parse
from edgeward.http.fields import check_name, check_value
from edgeward.values import doc

# What only the gateway sets, per side, and why (the reason is the config error's text).
_REQUEST_OWNED = {
    "host": "change the Host with rewrite: {host: ...} (it keeps the authority consistent)",
    "x-request-id": "the gateway sets X-Request-Id; it ties the request's logs and traces",
    "traceparent": "the gateway sets traceparent when tracing is on (W3C trace context)",
}
_RESPONSE_OWNED = {
    "x-request-id": "the gateway sets X-Request-Id on every response",
}


@dataclass(frozen=True, kw_only=True)
class HeadersConfig:
    remove: list[str] = field(
        default_factory=list, metadata=doc("names whose fields are removed (first)"))
    set: dict[str, str] = field(
        default_factory=dict,
        metadata=doc("name -> value: replaces every field of the name (second); values may "
                     "use ${variables}"))
    add: dict[str, str] = field(
        default_factory=dict,
        metadata=doc("name -> value: one more field, others stay (last); ${variables}"))

    def problems(self, owned: dict[str, str]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for i, name in enumerate(self.remove):
            out.extend(_name_problem(f"remove[{i}]", name, owned))
        for key, values in (("set", self.set), ("add", self.add)):
            for name, value in values.items():
                where = f"{key}.{name}"
                found = _name_problem(where, name, owned)
                out.extend(found)
                if not found:
                    out.extend(_value_problem(where, value))
        if not (self.remove or self.set or self.add):
            out.append(("", "give at least one of remove, set, add"))
        return out

    def ops(self) -> HeaderOps:
        return HeaderOps(
            list(self.remove),
            [FieldOp(n, parse(v)) for n, v in self.set.items()],
            [FieldOp(n, parse(v)) for n, v in self.add.items()])


def _name_problem(where: str, name: str, owned: dict[str, str]) -> list[tuple[str, str]]:
    if not isinstance(name, str):
        return [(where, f"expected a header name, got {name!r}")]
    try:
        check_name(name)
    except ValueError as exc:
        return [(where, str(exc))]
    reason = owned.get(name.lower())
    return [(where, reason)] if reason is not None else []


def _value_problem(where: str, value: str) -> list[tuple[str, str]]:
    try:
        template = parse(value)
        if template.constant is not None:
            check_value(template.constant)
        else:
            for piece in template.literals:
                check_value(piece)
    except ValueError as exc:
        return [(where, str(exc))]
    return []


@dataclass(frozen=True, kw_only=True)
class RequestHeadersConfig(HeadersConfig):
    def check(self) -> list[tuple[str, str]]:
        return self.problems(_REQUEST_OWNED)


@dataclass(frozen=True, kw_only=True)
class ResponseHeadersConfig(HeadersConfig):
    def check(self) -> list[tuple[str, str]]:
        return self.problems(_RESPONSE_OWNED)


def _request(config: RequestHeadersConfig, ctx: BuildContext) -> RequestHeaders:
    return RequestHeaders(config.ops(), ctx.max_header_bytes)


def _response(config: ResponseHeadersConfig, ctx: BuildContext) -> ResponseHeaders:
    return ResponseHeaders(config.ops(), ctx.max_header_bytes)


register("request_headers", RequestHeadersConfig, _request)
register("response_headers", ResponseHeadersConfig, _response)
