"""gRPC status codes, the statuses of the gateway's own errors, and `grpc-timeout` values.

Sans-I/O. The gateway answers a gRPC request it cannot forward the way a gRPC server would:
HTTP 200 with `grpc-status` and `grpc-message` in a trailers-only response (gRPC over HTTP/2
protocol spec, "Responses"), never with an HTTP error status that a gRPC client would only see
as UNKNOWN or INTERNAL. Which status goes with which of the gateway's error codes follows
Envoy's grpc_http1_reverse_bridge / local-reply mapping and gRPC's own HTTP-to-gRPC table
(doc/http-grpc-status-mapping.md), with the distinctions the issue asks for.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

OK: Final = 0
CANCELLED: Final = 1
UNKNOWN: Final = 2
INVALID_ARGUMENT: Final = 3
DEADLINE_EXCEEDED: Final = 4
NOT_FOUND: Final = 5
PERMISSION_DENIED: Final = 7
RESOURCE_EXHAUSTED: Final = 8
INTERNAL: Final = 13
UNAVAILABLE: Final = 14
UNIMPLEMENTED: Final = 12
UNAUTHENTICATED: Final = 16

# The status names as `retries.grpc_on` spells them (Envoy's retry_on names, snake_case).
BY_NAME: Final[dict[str, int]] = {
    "cancelled": CANCELLED,
    "deadline_exceeded": DEADLINE_EXCEEDED,
    "internal": INTERNAL,
    "resource_exhausted": RESOURCE_EXHAUSTED,
    "unavailable": UNAVAILABLE,
}

# The gateway's error codes (http/errors.py) whose gRPC status is not the one of their HTTP
# status in _BY_HTTP_STATUS.
_BY_ERROR: Final[dict[str, int]] = {
    "route_not_found": UNIMPLEMENTED,
    "rate_limited": RESOURCE_EXHAUSTED,
    "overloaded": RESOURCE_EXHAUSTED,
    "websocket_limit": RESOURCE_EXHAUSTED,
    "payload_too_large": RESOURCE_EXHAUSTED,
    "header_too_large": RESOURCE_EXHAUSTED,
    "unauthenticated": UNAUTHENTICATED,
    "forbidden": PERMISSION_DENIED,
    "ip_denied": PERMISSION_DENIED,
    "cors_rejected": PERMISSION_DENIED,
    "upstream_timeout": DEADLINE_EXCEEDED,
    "filter_timeout": DEADLINE_EXCEEDED,
    "request_timeout": DEADLINE_EXCEEDED,
    "no_healthy_upstream": UNAVAILABLE,
    "circuit_open": UNAVAILABLE,
    "upstream_connect_failed": UNAVAILABLE,
    "upstream_reset": UNAVAILABLE,
    "upstream_refused": UNAVAILABLE,
    "shutting_down": UNAVAILABLE,
    "auth_unavailable": UNAVAILABLE,
    "filter_error": INTERNAL,
    "bad_gateway": INTERNAL,
    "upstream_tls_error": UNAVAILABLE,
}

# gRPC's HTTP-to-gRPC mapping (doc/http-grpc-status-mapping.md) for other replies.
_BY_HTTP_STATUS: Final[dict[int, int]] = {
    400: INTERNAL, 401: UNAUTHENTICATED, 403: PERMISSION_DENIED, 404: UNIMPLEMENTED,
    408: DEADLINE_EXCEEDED, 413: RESOURCE_EXHAUSTED, 429: UNAVAILABLE, 502: UNAVAILABLE,
    503: UNAVAILABLE, 504: UNAVAILABLE,
}


def status_for(code: str | None, http_status: int) -> int:
    """The gRPC status of a reply the gateway makes with error `code` (or None) and
    `http_status`."""
    if code is not None:
        found = _BY_ERROR.get(code)
        if found is not None:
            return found
    if 200 <= http_status < 300:
        return OK
    return _BY_HTTP_STATUS.get(http_status, UNKNOWN)


def encode_message(text: str) -> bytes:
    """`grpc-message`: percent-encoded UTF-8, as the spec requires (space kept)."""
    return quote(text, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~").encode("ascii")


# grpc-timeout: 1-8 ASCII digits and a unit (gRPC over HTTP/2, "Requests").
_UNITS: Final[dict[int, float]] = {
    ord("H"): 3600.0, ord("M"): 60.0, ord("S"): 1.0, ord("m"): 1e-3, ord("u"): 1e-6,
    ord("n"): 1e-9,
}
MAX_TIMEOUT_DIGITS: Final = 8


def parse_timeout(value: bytes) -> float | None:
    """Seconds in a `grpc-timeout` value, or None when it is malformed (then ignored, as
    grpc-go and Envoy ignore it)."""
    if not 2 <= len(value) <= MAX_TIMEOUT_DIGITS + 1:
        return None
    unit = _UNITS.get(value[-1])
    digits = value[:-1]
    if unit is None or not digits.isdigit():
        return None
    return int(digits) * unit


def format_timeout(seconds: float) -> bytes:
    """A `grpc-timeout` value for `seconds`: whole milliseconds rounded up (at least 1, so a
    deadline with time left is never sent as already past), in at most 8 digits."""
    millis = int(seconds * 1000.0 + 0.999)
    if millis < 1:
        millis = 1
    if millis < 10 ** MAX_TIMEOUT_DIGITS:
        return b"%dm" % millis
    secs = int(seconds + 0.999)
    if secs < 10 ** MAX_TIMEOUT_DIGITS:
        return b"%dS" % secs
    return b"99999999H"


def is_grpc(content_type: str | None) -> bool:
    """A gRPC or gRPC-Web request, by its content-type."""
    return content_type is not None and content_type.startswith("application/grpc")


def status_of(fields: list[tuple[bytes, bytes]] | None) -> bytes | None:
    """The `grpc-status` value among `fields`, or None."""
    if fields:
        for name, value in fields:
            if name == b"grpc-status" or name.lower() == b"grpc-status":
                return value
    return None


_WEB_TEXT_TYPE: Final = b"application/grpc-web-text+proto"
_WEB_TYPE: Final = b"application/grpc-web+proto"
_GRPC_TYPE: Final = b"application/grpc"


def reply_content_type(request_type: bytes) -> bytes:
    """The content-type of the gateway's answer to a call sent as `request_type`."""
    if request_type.startswith(b"application/grpc-web-text"):
        return _WEB_TEXT_TYPE
    if request_type.startswith(b"application/grpc-web"):
        return _WEB_TYPE
    return _GRPC_TYPE


def trailers_only(request_type: bytes, status: int, code: str, message: str,
                  fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The head of a trailers-only response (HTTP 200, no body) ending a call with `status`;
    `grpc-message` is `code: message`, so the gateway's stable error code stays readable.
    `fields` (a Retry-After, WWW-Authenticate...) follow."""
    return [
        (b"content-type", reply_content_type(request_type)),
        (b"grpc-status", b"%d" % status),
        (b"grpc-message", encode_message(f"{code}: {message}")),
        *fields,
    ]
