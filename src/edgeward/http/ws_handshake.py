"""The WebSocket opening handshake (RFC 6455 §4): what the gateway checks of a client's
upgrade request, and of the upstream's 101 answer.

The codec lets through a request with `Upgrade: websocket` and `Connection: upgrade` (other
upgrade tokens stay refused there); the exchange asks `request_problem` once the route is
known and answers a refusal before any filter runs. The upstream's 101 is accepted only with
the `Sec-WebSocket-Accept` the request's key calls for (`accept_matches`); anything else
than a 101 is a normal response, relayed as such.

No I/O: heads in, a verdict out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Final, NamedTuple

from edgeward.http.message import NO_BODY, RequestHead

VERSION: Final = "13"  # §4.1: the only version RFC 6455 defines
# §1.3: the GUID appended to the key before hashing.
_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_KEY_BYTES: Final = 16  # §4.1: the key is 16 random bytes, base64-encoded


class Refusal(NamedTuple):
    """Why a handshake is refused: an error code, its detail, extra response fields."""

    code: str
    detail: str
    fields: list[tuple[bytes, bytes]] | None


_VERSION_FIELDS: Final = [(b"sec-websocket-version", VERSION.encode())]


def request_problem(head: RequestHead) -> Refusal | None:
    """None when `head` is a valid opening handshake (§4.2.1), else the refusal: 400
    websocket_bad_handshake, or 426 websocket_version_unsupported naming version 13."""
    if head.method != "GET":
        return Refusal("websocket_bad_handshake", "a WebSocket handshake must be a GET", None)
    if head.http10:
        return Refusal("websocket_bad_handshake", "a WebSocket handshake needs HTTP/1.1", None)
    if head.body_length != NO_BODY:
        return Refusal("websocket_bad_handshake", "a WebSocket handshake has no body", None)
    versions = head.headers.get_all("sec-websocket-version")
    if len(versions) != 1 or versions[0].strip() != VERSION:
        return Refusal("websocket_version_unsupported",
                       "only Sec-WebSocket-Version 13 is supported", _VERSION_FIELDS)
    keys = head.headers.get_all("sec-websocket-key")
    if len(keys) != 1 or not valid_key(keys[0].strip()):
        return Refusal("websocket_bad_handshake",
                       "Sec-WebSocket-Key must be 16 bytes in base64, given once", None)
    return None


def valid_key(key: str) -> bool:
    """Whether `key` is base64 (with padding) of exactly 16 bytes."""
    if len(key) != 24 or not key.isascii():
        return False
    try:
        return len(base64.b64decode(key, validate=True)) == _KEY_BYTES
    except (binascii.Error, ValueError):
        return False


def accept_for(key: str) -> str:
    """The Sec-WebSocket-Accept a server answers `key` with (§4.2.2 step 5.4)."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID).digest()  # noqa: S324 (RFC 6455)
    return base64.b64encode(digest).decode("ascii")


def accept_matches(key: str, accepts: list[str]) -> bool:
    """Whether an upstream's Sec-WebSocket-Accept fields (all of them) answer `key`."""
    return len(accepts) == 1 and accepts[0].strip() == accept_for(key.strip())
