"""`request_headers` and `response_headers`: remove, set and add header fields, with variables.

Each filter applies, in this order: `remove` (every field of each name), `set` (replace every
field of the name with one), `add` (one more field, others of the name stay). Names and
constant values were checked when the config was loaded (`edgeward.filters.builtin.headers`);
constant fields are kept as bytes and appended without another check. A value with variables
(`edgeward.filters.template`) is expanded per request (and checked when a request header's
value goes into it); what the expanded values add is bounded by `server.max_header_bytes` (a
request over it gets 431 header_too_large, a response keeps its fields and skips the rest).
"""

from __future__ import annotations

from typing import ClassVar

from edgeward.filters.api import ORDER_REWRITE, Filter, Reply, Request, RequestResult, Response
from edgeward.filters.template import Template
from edgeward.http.fields import Headers, check_value


class FieldOp:
    """One `set` or `add`: the name, and the value as bytes when it is a constant."""

    __slots__ = ("name", "raw_name", "template", "raw_value", "trusted")

    def __init__(self, name: str, template: Template) -> None:
        self.name = name
        self.raw_name = name.encode("ascii")
        self.template = template
        constant = template.constant
        self.raw_value: bytes | None = (check_value(constant) if constant is not None
                                        else None)
        # Variables the gateway itself checked (client_ip, request_id, host, path, ...)
        # cannot carry CR or LF; a request header's value is checked again when expanded.
        self.trusted = template.trusted

    def expand(self, req: Request) -> bytes:
        value = self.template.expand(req)
        if self.trusted:
            return value.encode("latin-1", "replace")
        return check_value(value)


class HeaderOps:
    """What one filter does to a set of fields, compiled from its config."""

    __slots__ = ("remove", "set", "add", "dynamic", "drop_names", "static_fields",
                 "static_block", "dynamic_ops", "static_add", "static_add_block")

    def __init__(self, remove: list[str], set_: list[FieldOp], add: list[FieldOp]) -> None:
        self.remove = [n.lower() for n in remove]
        self.set = set_
        self.add = add
        ops = [*set_, *add]
        self.dynamic = any(op.raw_value is None for op in ops)
        self.dynamic_ops = [op for op in ops if op.raw_value is None]
        # For a response head: drop removed and set names, then append the set and added
        # fields (constant ones as one ready block).
        self.drop_names = frozenset(n.lower().encode("ascii")
                                    for n in [*remove, *(op.name for op in set_)])
        self.static_fields: list[tuple[bytes, bytes]] = [
            (op.raw_name, op.raw_value) for op in ops if op.raw_value is not None]
        self.static_block = _block(self.static_fields)
        self.static_add: list[tuple[bytes, bytes]] = [
            (op.raw_name, op.raw_value) for op in add if op.raw_value is not None]
        self.static_add_block = _block(self.static_add)

    def apply(self, headers: Headers, req: Request, budget: int) -> bool:
        """Change a request's `headers`; False when the expanded values went over `budget`
        bytes."""
        for name in self.remove:
            headers.remove(name)
        spent = 0
        for op in self.set:
            raw = op.raw_value
            if raw is None:
                raw = op.expand(req)
                spent += len(raw)
                if spent > budget:
                    return False
            headers.remove(op.name)
            headers.append(op.raw_name, raw)
        for op in self.add:
            raw = op.raw_value
            if raw is None:
                raw = op.expand(req)
                spent += len(raw)
                if spent > budget:
                    return False
                headers.append(op.raw_name, raw)
        if self.static_add:
            headers.append_block(self.static_add, self.static_add_block)
        return True

    def apply_response(self, resp: Response, req: Request, budget: int) -> None:
        """Change a response head without taking the received head apart."""
        if self.drop_names:
            resp.drop_fields(self.drop_names)
        if self.static_fields:
            resp.append_block(self.static_fields, self.static_block)
        if self.dynamic:
            fields: list[tuple[bytes, bytes]] = []
            spent = 0
            for op in self.dynamic_ops:
                raw = op.expand(req)
                spent += len(raw)
                if spent > budget:
                    break
                fields.append((op.raw_name, raw))
            resp.append_block(fields, _block(fields))


def _block(fields: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join([n + b": " + v + b"\r\n" for n, v in fields])


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
    filters let through: the upstream's, and replies of filters after this one). The
    received head is not taken apart: removed lines are cut from it and new fields are
    appended as ready lines, so the codec still relays it."""

    order: ClassVar[int] = ORDER_REWRITE

    def __init__(self, ops: HeaderOps, max_header_bytes: int) -> None:
        self.name = "response_headers"
        self.ops = ops
        self.budget = max_header_bytes

    def on_response(self, req: Request, resp: Response) -> None:
        self.ops.apply_response(resp, req, self.budget)
