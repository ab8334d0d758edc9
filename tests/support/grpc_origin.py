"""`GrpcOrigin`: a real grpcio server on a free 127.0.0.1 port, with generic handlers (no
generated code: messages are raw bytes), for end-to-end tests.

Service `test.Echo`:
- `Unary`: answers the request bytes; a request `status:N:message` ends the call with gRPC
  status N instead; `sleep:S` waits S seconds first (deadlines); `meta` answers the metadata
  it received as `key=value` lines (grpc-timeout shows here as the deadline it set).
- `Stream` (server streaming): a request `N:SIZE` gets N messages of SIZE bytes each; a call
  whose caller went away stops and counts in `cancelled`.
- `Collect` (client streaming): answers the concatenation of the messages it got.
- `Chat` (bidi): answers each message as it arrives, upper-cased.
`grpc.health.v1.Health/Check` answers SERVING, or NOT_SERVING once `serving` is False.
Every call is counted in `calls` by method name.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc

SERVING = b"\x08\x01"
NOT_SERVING = b"\x08\x02"


class GrpcOrigin:
    def __init__(self, workers: int = 32) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                                  options=[("grpc.so_reuseport", 0)])
        self.serving = True
        self.calls: Counter[str] = Counter()
        self.cancelled = 0  # Stream calls that found their caller gone
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(self._unary),
            "Stream": grpc.unary_stream_rpc_method_handler(self._stream),
            "Collect": grpc.stream_unary_rpc_method_handler(self._collect),
            "Chat": grpc.stream_stream_rpc_method_handler(self._chat),
        }
        self.server.add_generic_rpc_handlers((
            grpc.method_handlers_generic_handler("test.Echo", handlers),
            grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
                "Check": grpc.unary_unary_rpc_method_handler(self._health)}),
        ))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"

    def __enter__(self) -> GrpcOrigin:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(None)

    def _unary(self, request: bytes, context: Any) -> bytes:
        self.calls["Unary"] += 1
        if request.startswith(b"status:"):
            _, code, message = request.decode().split(":", 2)
            status = next(s for s in grpc.StatusCode if s.value[0] == int(code))
            context.abort(status, message)
        if request.startswith(b"sleep:"):
            time.sleep(float(request[6:]))
        if request == b"meta":
            seen = [f"{k}={v}" for k, v in context.invocation_metadata()]
            remaining = context.time_remaining()
            if remaining is not None:
                seen.append(f"deadline={remaining:.3f}")
            return "\n".join(seen).encode()
        return request

    def _stream(self, request: bytes, context: Any) -> Iterator[bytes]:
        self.calls["Stream"] += 1
        count, size = (int(x) for x in request.split(b":"))
        finished = False

        def ended() -> None:  # called when the call ends, however it ends
            if not finished:
                self.cancelled += 1

        context.add_callback(ended)
        for i in range(count):
            yield bytes([65 + i % 26]) * size
        finished = True

    def _collect(self, requests: Iterator[bytes], context: Any) -> bytes:
        self.calls["Collect"] += 1
        return b"".join(requests)

    def _chat(self, requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        self.calls["Chat"] += 1
        for message in requests:
            yield message.upper()

    def _health(self, request: bytes, context: Any) -> bytes:
        self.calls["Check"] += 1
        return SERVING if self.serving else NOT_SERVING
