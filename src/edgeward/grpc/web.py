"""gRPC-Web to gRPC for browser clients: the `grpc_web` filter.

A browser cannot read HTTP trailers, so gRPC-Web (github.com/grpc/grpc/doc/PROTOCOL-WEB.md)
carries them in the body: the gateway forwards a gRPC-Web call to the upstream as gRPC and
answers in gRPC-Web, as Envoy's envoy.filters.http.grpc_web does:

- request: content-type `application/grpc-web[+proto]` becomes `application/grpc[+proto]`;
  `application/grpc-web-text[+proto]` too, with its body base64-decoded (each message may be
  encoded on its own, padding and all);
- response: content-type back to the gRPC-Web type the client used (with the message
  format, `+proto` when the upstream names none); the trailers become a last
  frame of the body (flag 0x80, `name:value\\r\\n` lines); in text mode the body is
  base64-encoded (whole 3-byte groups as they come, the rest at the end); a trailers-only
  response keeps `grpc-status` in its head, as the protocol allows;
- CORS: a response to a request with Origin exposes grpc-status and grpc-message
  (Access-Control-Expose-Headers), so that the browser lets the client read them. The preflight
  itself is the route's `cors` filter's (allow the headers x-grpc-web, x-user-agent,
  grpc-timeout and content-type there).

Other requests on the route pass through untouched.
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import ClassVar, Final

from edgeward.filters.api import Filter, Reply, Request, Response
from edgeward.http.message import NO_BODY, STREAMED

# Before CORS (100): its response phase runs after CORS's, on the head the client gets.
ORDER_GRPC_WEB: Final = 90

WEB: Final = "application/grpc-web"
WEB_TEXT: Final = "application/grpc-web-text"
GRPC: Final = "application/grpc"
TRAILER_FLAG: Final = 0x80
EXPOSE: Final = "grpc-status, grpc-message"
_VAR: Final = "grpc_web"
_DROPPED: Final = ("x-grpc-web",)


class WebCall:
    """One gRPC-Web call's translation state: text mode, and the base64 left over between
    body parts (a partial 4-character group in, a partial 3-byte group out)."""

    __slots__ = ("text", "web_type", "pending_in", "pending_out")

    def __init__(self, text: bool, web_type: str) -> None:
        self.text = text
        self.web_type = web_type   # the response's content-type prefix (web or web-text)
        self.pending_in = b""
        self.pending_out = b""

    def decode(self, data: bytes, end: bool) -> bytes:
        """Base64 to bytes, a message's padding allowed before the next message's text."""
        buf = self.pending_in + data
        usable = len(buf) if end else len(buf) - len(buf) % 4
        self.pending_in = buf[usable:]
        out: list[bytes] = []
        at = 0
        while at < usable:
            pad = buf.find(b"=", at, usable)
            stop = usable if pad < 0 else min(usable, (pad // 4 + 1) * 4)
            out.append(base64.b64decode(buf[at:stop]))
            at = stop
        return b"".join(out)

    def encode(self, data: bytes, end: bool) -> bytes:
        buf = self.pending_out + data
        usable = len(buf) if end else len(buf) - len(buf) % 3
        self.pending_out = buf[usable:]
        return base64.b64encode(buf[:usable])


def trailer_frame(fields: list[tuple[bytes, bytes]]) -> bytes:
    """The gRPC-Web frame that carries trailers: flag 0x80, length, `name:value\\r\\n`."""
    block = b"".join(name.lower() + b":" + value + b"\r\n" for name, value in fields)
    return struct.pack(">BI", TRAILER_FLAG, len(block)) + block


def web_content_type(grpc_type: str, web_type: str) -> str:
    """The gRPC-Web type of an answer of `grpc_type` to a call of `web_type`: its message
    format (`+proto` when the upstream names none, as grpcio does; Envoy answers so too),
    `application/grpc+json` to a text call is `application/grpc-web-text+json`."""
    suffix = grpc_type[len(GRPC):]
    return web_type + (suffix if suffix.startswith("+") else "+proto")


class GrpcWeb(Filter):
    """Translates gRPC-Web calls to gRPC and their answers back (see the module docstring)."""

    order: ClassVar[int] = ORDER_GRPC_WEB

    def __init__(self) -> None:
        self.name = "grpc_web"

    def on_request(self, req: Request) -> Reply | None:
        content_type = req.headers.get("content-type")
        if content_type is None or not content_type.startswith(WEB):
            return None
        text = content_type.startswith(WEB_TEXT)
        suffix = content_type[len(WEB_TEXT if text else WEB):]
        req.headers.set("content-type", GRPC + suffix)
        for name in _DROPPED:
            req.headers.remove(name)
        req.vars[_VAR] = WebCall(text, WEB_TEXT if text else WEB)
        return None

    def on_request_body(self, req: Request, data: bytes, end: bool) -> bytes | Reply:
        call = req.vars.get(_VAR)
        if not isinstance(call, WebCall) or not call.text:
            return data
        try:
            return call.decode(data, end)
        except (binascii.Error, ValueError):
            return Reply.error(400, "bad_request", "the gRPC-Web text body is not base64")

    def on_response(self, req: Request, resp: Response) -> None:
        call = req.vars.get(_VAR)
        if not isinstance(call, WebCall):
            return
        headers = resp.headers
        content_type = headers.get("content-type")
        if content_type is not None and content_type.startswith(GRPC) and not (
                content_type.startswith(WEB)):
            headers.set("content-type", web_content_type(content_type, call.web_type))
        if resp.body_length != NO_BODY:
            resp.body_length = STREAMED  # the trailers join the body; text mode grows it
        if "origin" in req.headers:
            headers.add("access-control-expose-headers", EXPOSE)

    def on_response_body(self, req: Request, resp: Response, data: bytes, end: bool) -> bytes:
        call = req.vars.get(_VAR)
        if not isinstance(call, WebCall):
            return data
        if end and resp.trailers is not None:
            fields = resp.trailers.fields
            resp.trailers = None  # in the body instead
            if fields:
                data = data + trailer_frame(fields)
        if call.text:
            return call.encode(data, end)
        return data
