"""Every response the gateway makes itself: an RFC 9457 problem document with a stable code.

Codes are part of the public contract and are never renamed once released; README lists them.
"""

from __future__ import annotations

import json
from typing import Final, NamedTuple

from edgeward.http.date import http_date


class ErrorCode(NamedTuple):
    code: str
    status: int
    meaning: str


_CATALOGUE = [
    ErrorCode("bad_request", 400, "The request is malformed or ambiguous at the framing level."),
    ErrorCode("unauthorized", 401, "The admin API needs a bearer token for this call."),
    ErrorCode("unauthenticated", 401,
              "The route needs authentication and no method admitted the request; "
              "WWW-Authenticate names the methods."),
    ErrorCode("forbidden", 403, "The consumer is authenticated but not allowed on this route."),
    ErrorCode("unknown_client_certificate", 403,
              "The route's client_cert method found a verified client certificate that no "
              "consumer lists in client_certs."),
    ErrorCode("websocket_not_allowed", 400,
              "A WebSocket handshake on a route without `websocket:` (upgrades are per route)."),
    ErrorCode("websocket_bad_handshake", 400,
              "A WebSocket handshake that is not a GET on HTTP/1.1 without a body, or whose "
              "Sec-WebSocket-Key is not 16 bytes in base64 given once."),
    ErrorCode("websocket_handshake_required", 400,
              "A filter answers this route's requests only as WebSocket connections "
              "(Reply.websocket), and this request is not a handshake (or came over HTTP/2, "
              "where WebSocket is not offered)."),
    ErrorCode("websocket_subprotocol_not_offered", 400,
              "The filter that accepts the handshake speaks a subprotocol the client did not "
              "offer in Sec-WebSocket-Protocol."),
    ErrorCode("websocket_version_unsupported", 426,
              "A WebSocket handshake for another version than 13; Sec-WebSocket-Version "
              "names 13."),
    ErrorCode("route_not_found", 404, "No route matches the host, path, method and headers."),
    ErrorCode("not_found", 404, "The admin API has no such path."),
    ErrorCode("method_not_allowed", 405,
              "The admin API or device API path does not take this method; Allow says which."),
    ErrorCode("invalid_shadow_update", 400,
              "A device shadow update, If-Match or Idempotency-Key that is not valid; the "
              "message says which part."),
    ErrorCode("shadow_not_found", 404, "The device has no such shadow (never written)."),
    ErrorCode("command_not_found", 404,
              "The device has no pending command with this id (done, expired, or never sent)."),
    ErrorCode("version_conflict", 409,
              "The shadow's version is not the expected one (If-Match or `version`); "
              "`current` holds the shadow as it is."),
    ErrorCode("shadow_too_large", 413,
              "The update body, or the shadow it would make, exceeds devices.max_document_bytes."),
    ErrorCode("request_timeout", 408,
              "The client did not send the request head, or the next part of its body, in time."),
    ErrorCode("cors_rejected", 403,
              "A CORS preflight asked for an origin, method or header the route's cors "
              "filter does not allow."),
    ErrorCode("ip_denied", 403, "The client address is refused by the route's ip filter."),
    ErrorCode("payload_too_large", 413, "The request body exceeds the route's max_body_size."),
    ErrorCode("uri_too_long", 414, "The request line exceeds server.max_request_line."),
    ErrorCode("rate_limited", 429, "The route's rate limit refused the request; see Retry-After."),
    ErrorCode("device_commands_exceeded", 429,
              "The device already has devices.max_pending_commands commands waiting for its "
              "acknowledgement."),
    ErrorCode("device_streams_exceeded", 429,
              "The device already has the route's devices.max_streams delta streams (SSE or "
              "WebSocket) open in this worker."),
    ErrorCode(
        "header_too_large", 431, "The request head exceeds server.max_header_bytes."
    ),
    ErrorCode("filter_error", 500,
              "A filter on the route failed (raised, or returned something not allowed)."),
    ErrorCode("not_implemented", 501, "A method or transfer coding the gateway does not forward."),
    ErrorCode("upstream_connect_failed", 502, "No connection to an upstream endpoint was made."),
    ErrorCode("upstream_tls_error", 502,
              "The TLS handshake with the upstream failed: its certificate did not verify "
              "(CA, name, expiry) or it refused the gateway's."),
    ErrorCode("upstream_reset", 502, "The upstream closed the connection before answering."),
    ErrorCode("upstream_refused", 502,
              "The HTTP/2 upstream refused the stream unprocessed (GOAWAY or REFUSED_STREAM), "
              "again after the one resend that allows."),
    ErrorCode("bad_gateway", 502, "The upstream's response was not valid HTTP/1.1 or HTTP/2."),
    ErrorCode("no_healthy_upstream", 503, "The upstream has no endpoint, or none is available."),
    ErrorCode("no_subset", 503,
              "The route's subset filter maps this request to no label subset and its "
              "fallback is none."),
    ErrorCode("no_subset_endpoint", 503,
              "The label subset chosen for this request has no available endpoint and the "
              "fallback is none."),
    ErrorCode("circuit_open", 503, "The upstream's circuit breaker is open; origin not tried."),
    ErrorCode("overloaded", 503, "The route's max_concurrent requests are already in flight."),
    ErrorCode("auth_unavailable", 503,
              "Authentication could not be decided: the forward-auth service did not answer "
              "(failure_mode: deny) or no JWT keys could be fetched yet."),
    ErrorCode("websocket_limit", 503,
              "The route's websocket.max_tunnels tunnels are already open in this worker."),
    ErrorCode("device_store_unavailable", 503,
              "Redis did not answer a shadow or telemetry call within devices.timeout, or the "
              "shadow changed under every devices.cas_attempts round."),
    ErrorCode("shutting_down", 503, "The gateway is draining and accepts no new requests."),
    ErrorCode("fault_injected", 503,
              "A fault filter aborted the request (a drill); the status is its abort.status."),
    ErrorCode("upstream_timeout", 504, "The upstream did not answer within the route's timeouts."),
    ErrorCode("filter_timeout", 504, "A filter did not decide within the route's timeout."),
    ErrorCode("http_version_not_supported", 505, "Only HTTP/1.0 and HTTP/1.1 are accepted here."),
    ErrorCode("invalid_config", 400, "The admin API refused a config; `problems` lists why."),
    ErrorCode("invalid_purge", 400, "POST /cache/purge's body is not a purge the API takes."),
    ErrorCode("purge_not_published", 503,
              "A purge was applied in this worker but could not be appended to the fleet's "
              "purge stream (Redis error): the other gateways did not get it."),
    ErrorCode("purge_not_shared", 503,
              "A purge was applied in this worker but Redis refused removing it from the "
              "shared cache tier (cache.shared): other gateways may still find it there."),
    ErrorCode("headers_too_large", 431, "The admin API request head exceeds admin.max_head."),
    ErrorCode("body_too_large", 413, "The admin API request body exceeds admin.max_body."),
]

ERRORS: dict[str, ErrorCode] = {e.code: e for e in _CATALOGUE}

REASONS: dict[int, bytes] = {
    100: b"Continue", 101: b"Switching Protocols", 103: b"Early Hints",
    200: b"OK", 201: b"Created", 202: b"Accepted", 203: b"Non-Authoritative Information",
    204: b"No Content", 205: b"Reset Content", 206: b"Partial Content",
    300: b"Multiple Choices", 301: b"Moved Permanently", 302: b"Found", 303: b"See Other",
    304: b"Not Modified", 307: b"Temporary Redirect", 308: b"Permanent Redirect",
    400: b"Bad Request", 401: b"Unauthorized", 403: b"Forbidden", 404: b"Not Found",
    405: b"Method Not Allowed", 406: b"Not Acceptable", 408: b"Request Timeout",
    409: b"Conflict", 410: b"Gone", 411: b"Length Required", 412: b"Precondition Failed",
    413: b"Content Too Large", 414: b"URI Too Long", 415: b"Unsupported Media Type",
    416: b"Range Not Satisfiable", 417: b"Expectation Failed", 421: b"Misdirected Request",
    422: b"Unprocessable Content", 425: b"Too Early", 426: b"Upgrade Required",
    428: b"Precondition Required", 429: b"Too Many Requests",
    431: b"Request Header Fields Too Large", 500: b"Internal Server Error",
    501: b"Not Implemented", 502: b"Bad Gateway", 503: b"Service Unavailable",
    504: b"Gateway Timeout", 505: b"HTTP Version Not Supported",
}

# Status lines are built once: the hot path only looks them up.
STATUS_LINES: dict[int, bytes] = {
    s: b"HTTP/1.1 %d %s\r\n" % (s, r) for s, r in REASONS.items()
}


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d Unknown\r\n" % status
    return line


# RFC 9457 problem documents. `type` identifies the problem by its stable code: a URN, since a
# type URI that is not a link must not pretend to be one (RFC 9457 section 3.1.1); README.md's
# error table is its documentation.
PROBLEM_TYPE: Final = "urn:edgeward:problem:"
PROBLEM_JSON: Final = b"application/problem+json"
# Words a title writes in capitals (or as the protocol spells itself).
_TITLE_WORDS: Final = {"uri": "URI", "http": "HTTP", "tls": "TLS", "ip": "IP", "cors": "CORS",
                       "websocket": "WebSocket", "api": "API"}
# A bound on the document starts kept for filters' own codes (the catalogue's are all kept).
_MAX_CACHED: Final = 1024
_starts: dict[str, bytes] = {}


def title(code: str) -> str:
    """A problem type's short summary, from its code: `upstream_tls_error` -> `Upstream TLS
    error`."""
    words = [_TITLE_WORDS.get(w, w) for w in code.split("_")]
    first = words[0]
    if first and first[0].islower():
        words[0] = first[0].upper() + first[1:]
    return " ".join(words)


def _start(code: str, status: int) -> bytes:
    """`{"type":…,"title":…,"status":…,"code":…,"detail":` for `code` answered with `status`:
    built once per code and status, so an error costs two small dumps and a join."""
    key = f"{status} {code}"
    found = _starts.get(key)
    if found is None:
        dumps = json.dumps
        found = ('{"type":' + dumps(PROBLEM_TYPE + code) + ',"title":' + dumps(title(code))
                 + ',"status":' + str(status) + ',"code":' + dumps(code)
                 + ',"detail":').encode()
        if len(_starts) < _MAX_CACHED:
            _starts[key] = found
    return found


def error_body(code: str, request_id: str, detail: str | None = None,
               trace_id: str | None = None, status: int = 0) -> bytes:
    """The RFC 9457 problem document for `code`: one of the catalogue's, or a filter's own
    code (then `detail` says what happened). `status` defaults to the catalogue's (500 for a
    code not in it)."""
    entry = ERRORS.get(code)
    if not status:
        status = entry.status if entry is not None else 500
    if detail is None:
        detail = entry.meaning if entry is not None else code
    dumps = json.dumps
    tail = ',"request_id":' + dumps(request_id)
    if trace_id:
        tail += ',"trace_id":' + dumps(trace_id)
    return _start(code, status) + (dumps(detail) + tail + "}").encode()


def error_response(
    code: str,
    request_id: str,
    *,
    message: str | None = None,
    close: bool = False,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    head_only: bool = False,
    trace_id: str | None = None,
) -> bytes:
    """A whole HTTP/1.1 response carrying the problem document for `code`."""
    entry = ERRORS[code]
    body = error_body(code, request_id, message, trace_id, entry.status)
    parts = [
        status_line(entry.status),
        b"content-type: application/problem+json\r\ncontent-length: %d\r\n" % len(body),
        b"date: " + http_date() + b"\r\n",
        b"x-request-id: " + request_id.encode() + b"\r\n",
    ]
    if extra_headers:
        parts.extend(n + b": " + v + b"\r\n" for n, v in extra_headers)
    if close:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if not head_only:
        parts.append(body)
    return b"".join(parts)
