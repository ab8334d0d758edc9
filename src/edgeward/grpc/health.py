"""The gRPC health check probe: `grpc.health.v1.Health/Check` over a fresh HTTP/2 connection.

An endpoint is healthy when the call ends with grpc-status 0 and its HealthCheckResponse says
SERVING (grpc/grpc doc/health-checking.md; Envoy's grpc_health_check, Kubernetes' grpc probe).
The messages are two tiny protobufs, written and read by hand here:
HealthCheckRequest {string service = 1;} and HealthCheckResponse {ServingStatus status = 1;}.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from typing import Final

import ngh2

PATH: Final = b"/grpc.health.v1.Health/Check"
SERVING: Final = 1
STATUS_NAMES: Final = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
MAX_RESPONSE: Final = 4096  # a HealthCheckResponse is 2 bytes; anything far larger is wrong


def request_message(service: str) -> bytes:
    """A length-prefixed HealthCheckRequest for `service` ("" asks about the whole server)."""
    name = service.encode()
    body = b"\x0a" + _varint(len(name)) + name if name else b""
    return struct.pack(">BI", 0, len(body)) + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def serving_status(body: bytes) -> int | None:
    """The `status` of the first length-prefixed HealthCheckResponse in `body` (0, UNKNOWN,
    when the field is absent), or None when `body` holds no whole uncompressed message."""
    if len(body) < 5 or body[0] != 0:
        return None
    size = struct.unpack(">I", body[1:5])[0]
    message = body[5:5 + size]
    if len(message) < size:
        return None
    at = 0
    status = 0
    while at < len(message):
        key = message[at]
        at += 1
        if key == 0x08 and at < len(message):      # field 1, varint (values fit one byte)
            status = message[at] & 0x7F
            at += 1
        elif key & 7 == 2 and at < len(message):   # a length-delimited field: skip it
            at += 1 + message[at]
        else:
            return status
    return status


async def grpc_probe(host: str, port: int, authority: str, service: str, timeout: float,
                     tls: tuple[ssl.SSLContext, str | None] | None = None) -> tuple[bool, str]:
    """One health check call; (ok, detail), never raising for network trouble."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            try:
                if tls is None:
                    reader, writer = await asyncio.open_connection(host, port)
                else:
                    reader, writer = await asyncio.open_connection(
                        host, port, ssl=tls[0], server_hostname=tls[1] or host)
            except OSError as exc:
                return False, f"connect: {type(exc).__name__}"
            return await _call(reader, writer, authority, service)
    except TimeoutError:
        return False, "timeout"
    except (OSError, ngh2.NGH2Error) as exc:
        return False, f"io: {type(exc).__name__}"
    finally:
        if writer is not None:
            writer.close()


async def _call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authority: str,
                service: str) -> tuple[bool, str]:
    h2 = ngh2.Connection(ngh2.Role.CLIENT)
    h2.initiate_connection({ngh2.Setting.ENABLE_PUSH: 0})
    scheme = b"https" if writer.get_extra_info("ssl_object") is not None else b"http"
    sid = h2.send_request([
        (b":method", b"POST"), (b":scheme", scheme), (b":authority", authority.encode()),
        (b":path", PATH), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
        (b"user-agent", b"edgeward-health"),
    ])
    h2.send_data(sid, request_message(service), end_stream=True)
    writer.write(h2.data_to_send())
    body = b""
    grpc_status: bytes | None = None
    http_status = b""
    while True:
        data = await reader.read(65536)
        if not data:
            return False, "closed without response"
        h2.receive_data(data)
        for event in h2.events():
            if isinstance(event, ngh2.ResponseReceived) and event.stream_id == sid:
                fields = dict(event.headers)
                http_status = fields.get(b":status", b"")
                grpc_status = fields.get(b"grpc-status", grpc_status)
                if event.end_stream:
                    return _verdict(http_status, grpc_status, body)
            elif isinstance(event, ngh2.DataReceived) and event.stream_id == sid:
                body += event.data
                if len(body) > MAX_RESPONSE:
                    return False, "response too large"
                if event.end_stream:
                    return _verdict(http_status, grpc_status, body)
            elif isinstance(event, ngh2.TrailersReceived) and event.stream_id == sid:
                grpc_status = dict(event.headers).get(b"grpc-status", grpc_status)
                return _verdict(http_status, grpc_status, body)
            elif isinstance(event, ngh2.StreamReset | ngh2.GoAwayReceived):
                return False, "reset"
        out = h2.data_to_send()
        if out:
            writer.write(out)


def _verdict(http_status: bytes, grpc_status: bytes | None, body: bytes) -> tuple[bool, str]:
    if http_status != b"200":
        return False, f"status {http_status.decode('latin-1') or 'missing'}"
    if grpc_status != b"0":
        shown = grpc_status.decode("latin-1") if grpc_status is not None else "missing"
        return False, f"grpc-status {shown}"
    status = serving_status(body)
    if status is None:
        return False, "no HealthCheckResponse"
    if status != SERVING:
        return False, STATUS_NAMES.get(status, f"status {status}")
    return True, "SERVING"
