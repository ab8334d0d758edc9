"""A filter accepted a WebSocket handshake itself (`Reply.websocket`): what the exchange checks
and the 101 it answers with (`edgeward.proxy.exchange` does the switching).

The order, after the route's filters up to the one that accepts (authentication, IP rules,
rate limits ran before it, as for a tunnel):
  the request is a handshake (else 400 websocket_handshake_required: not an upgrade, or
  HTTP/2, where RFC 8441 is not offered) → the subprotocol chosen is one the client offered
  (else 400 websocket_subprotocol_not_offered) → one of the route's max_tunnels slots
  (503 websocket_limit) → the 101 (Sec-WebSocket-Accept, Sec-WebSocket-Protocol, the reply's
  fields) through the response filters → the codec hands the connection to a
  `ws_endpoint.WebSocket` that holds the slot until it closes. The exchange then ends with
  status 101 and counts as `upgraded`, like a tunnel.

No I/O: heads in, a verdict or a head out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from edgeward.filters.api import Reply
from edgeward.http.fields import Headers
from edgeward.http.message import NO_BODY, RequestHead, ResponseHead
from edgeward.http.ws_handshake import Refusal, accept_for

if TYPE_CHECKING:
    from edgeward.proxy.route import Route

_NOT_HANDSHAKE: Final = Refusal(
    "websocket_handshake_required",
    "this route answers only WebSocket handshakes (over HTTP/1.1)", None)


def offered_subprotocols(values: list[str]) -> list[str]:
    """The tokens of a request's Sec-WebSocket-Protocol fields, in order (RFC 6455 §4.1)."""
    return [token.strip() for value in values for token in value.split(",") if token.strip()]


def refusal(head: RequestHead, route: Route | None, reply: Reply) -> Refusal | None:
    """Why the gateway cannot accept this handshake as `reply` asks, or None."""
    if head.upgrade is None or route is None or route.websocket is None:
        return _NOT_HANDSHAKE
    chosen = reply.subprotocol
    if chosen is not None and chosen not in offered_subprotocols(
            head.headers.get_all("sec-websocket-protocol")):
        return Refusal("websocket_subprotocol_not_offered",
                       f"the client did not offer the subprotocol {chosen!r}", None)
    return None


def switching_head(head: RequestHead, reply: Reply) -> ResponseHead:
    """The 101 answering `head` (the codec adds Connection and Upgrade)."""
    key = (head.headers.get("sec-websocket-key") or "").strip()
    fields = [(b"sec-websocket-accept", accept_for(key).encode("ascii"))]
    if reply.subprotocol is not None:
        fields.append((b"sec-websocket-protocol", reply.subprotocol.encode("ascii")))
    fields.extend(reply.fields)
    return ResponseHead(101, Headers(fields), NO_BODY)
