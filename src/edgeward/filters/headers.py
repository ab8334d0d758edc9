"""`request_headers` and `response_headers`: remove, set and add header fields, with variables.

Each filter applies, in this order: `remove` (every field of each name), `set` (replace every
field of the name with one), `add` (one more field, others of the name stay). Names and
constant values were checked when the config was loaded (`edgeward.filters.builtin.headers`);
constant fields are kept as bytes and appended without another check. A value with variables
(`edgeward.filters.template`) is expanded and checked per request; what the expanded values
add is bounded by `server.max_header_bytes` (a request over it gets 431 header_too_large, a
response keeps its fields and skips the rest).
"""

from __future__ import annotations

from typing import ClassVar

from edgeward.filters.api import ORDER_REWRITE, Filter, Reply, Request, RequestResult, Response
from edgeward.filters.template import Template
from edgeward.http.fields import Headers, check_value


class FieldOp:
    """One `set` or `add`: the name, and the value as bytes when it is a constant."""

    __slots__ = ("name", "raw_name", "template", "raw_value")

    def __init__(self, name: str, template: Template) -> None:
        self.name = name
        self.raw_name = name.encode("ascii")
        self.template = template
        constant = template.constant
        self.raw_value: bytes | None = (check_value(constant) if constant is not None
                                        else None)


class HeaderOps:
    """What one filter does to a set of fields, compiled from its config."""

    __slots__ = ("remove", "set", "add", "static_add", "static_block", "dynamic")

    def __init__(self, remove: list[str], set_: list[FieldOp], add: list[FieldOp]) -> None:
        self.remove = [n.lower() for n in remove]
        self.set = set_
        self.add = add
        # Constant `add` fields, appended as one block (a relayed head keeps its bytes).
        static = [(op.raw_name, op.raw_value) for op in add if op.raw_value is not None]
        self.static_add: list[tuple[bytes, bytes]] = static
        self.static_block = b"".join(n + b": " + v + b"\r\n" for n, v in static)
        self.dynamic = any(op.raw_value is None for op in (*set_, *add))

    def apply(self, headers: Headers, req: Request, budget: int) -> bool:
        """Change `headers`; False when the expanded values went over `budget` bytes."""
        for name in self.remove:
            headers.remove(name)
        spent = 0
        for op in self.set:
            raw = op.raw_value
            if raw is None:
                raw = check_value(op.template.expand(req))
                spent += len(raw)
                if spent > budget:
                    return False
            headers.remove(op.name)
            headers.append(op.raw_name, raw)
        for op in self.add:
            raw = op.raw_value
            if raw is None:
                raw = check_value(op.template.expand(req))
                spent += len(raw)
                if spent > budget:
                    return False
                headers.append(op.raw_name, raw)
        if self.static_add:
            headers.append_block(self.static_add, self.static_block)
        return True


class RequestHeaders(Filter):
    """`request_headers`: the fields sent upstream."""

    order: ClassVar[int] = ORDER_REWRITE

    def __init__(self, ops: HeaderOps, max_header_bytes: int) -> None:
        self.name = "request_headers"
        self.ops = ops
        self.budget = max_header_bytes

    def on_request(self, req: Request) -> RequestResult:
        if not self.ops.apply(req.headers, req, self.budget):
            return Reply.error(431, "header_too_large",
                               "request_headers values expand beyond server.max_header_bytes")
        return None


class ResponseHeaders(Filter):
    """`response_headers`: the fields sent to the client (on every response the request's
    filters let through: the upstream's, and replies of filters after this one)."""

    order: ClassVar[int] = ORDER_REWRITE

    def __init__(self, ops: HeaderOps, max_header_bytes: int) -> None:
        self.name = "response_headers"
        self.ops = ops
        self.budget = max_header_bytes
        # Only constant adds: the received head is not taken apart.
        self.append_only = not ops.remove and not ops.set and not ops.dynamic

    def on_response(self, req: Request, resp: Response) -> None:
        ops = self.ops
        if self.append_only:
            resp.append_block(ops.static_add, ops.static_block)
            return
        ops.apply(resp.headers, req, self.budget)
