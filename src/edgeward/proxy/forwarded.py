"""The forwarding identity the gateway sends upstream, and who the client is.

Every forwarded request carries the gateway's own `X-Forwarded-For`, `X-Forwarded-Proto`,
`X-Forwarded-Host`, `X-Request-Id` and, when tracing is on, `traceparent`. What a client sent
under those names is replaced, unless the TCP peer is one of `server.trusted_proxies`: then its
X-Forwarded-For chain is extended with the peer, and its X-Forwarded-Proto/-Host are kept.
`X-Real-IP` and `Forwarded` from an untrusted peer are removed (the gateway does not send
them itself; a trusted proxy's pass through).

The client address (`client_ip`: rate-limit keys, hash keys, IP rules, access log) is the TCP
peer, or behind trusted proxies the rightmost X-Forwarded-For hop that is not itself a trusted
proxy (nginx `real_ip_recursive on`): every hop to its right was added by a proxy we trust,
and that hop is the one the nearest trusted proxy saw connect.
"""

from __future__ import annotations

from typing import Final

from edgeward.http.headers import (
    OWN_FORWARDED,
    OWN_TRACEPARENT,
    OWN_X_REAL_IP,
    OWN_XFF,
    OWN_XFH,
    OWN_XFP,
    ForwardedPolicy,
)
from edgeward.http.message import RequestHead
from edgeward.proxy.trace import Tracer

_XFF: Final = b"x-forwarded-for"
_XFP: Final = b"x-forwarded-proto"
_XFH: Final = b"x-forwarded-host"
_REQUEST_ID: Final = b"x-request-id"
_TRACEPARENT: Final = b"traceparent"
_IDENTITY: Final = OWN_XFF | OWN_XFP | OWN_XFH | OWN_X_REAL_IP | OWN_FORWARDED


class ForwardedFields:
    """Adds the forwarding fields to each request head. The common case (the client sent none
    of them) reuses the fields and their lines from the last request with the same peer,
    scheme and Host: consecutive requests (a keep-alive connection) repeat them."""

    __slots__ = ("peer", "scheme", "authority", "fields", "block")

    def __init__(self) -> None:
        self.peer = ""
        self.scheme = ""
        self.authority = b""
        self.fields: list[tuple[bytes, bytes]] = []
        self.block = b""

    def add(self, head: RequestHead, policy: ForwardedPolicy, tracer: Tracer | None) -> None:
        """Add the gateway's forwarding fields to `head` (and settle `client_ip`)."""
        headers = head.headers
        owned = head.owned
        traceparent: str | None = None
        id_line = head.id_line
        if owned & (_IDENTITY | OWN_TRACEPARENT if tracer is not None else _IDENTITY):
            traceparent = _take_owned(head, policy, owned, tracer is not None) or None
        else:
            if (head.peer_ip != self.peer or head.scheme != self.scheme
                    or head.authority != self.authority):
                self._remember(head)
            headers.append_block(self.fields, self.block)
        headers.append_line(_REQUEST_ID, id_line[14:-2], id_line)
        if tracer is not None:
            head.trace, value = tracer.start(traceparent)
            headers.append(_TRACEPARENT, value)

    def _remember(self, head: RequestHead) -> None:
        self.peer, self.scheme, self.authority = head.peer_ip, head.scheme, head.authority
        self.fields = [(_XFF, head.peer_ip.encode()), (_XFP, head.scheme.encode()),
                       (_XFH, head.authority)]
        self.block = b"".join([n + b": " + v + b"\r\n" for n, v in self.fields])


def _take_owned(head: RequestHead, policy: ForwardedPolicy, owned: int, tracing: bool) -> str:
    """The client sent some of the gateway's fields: replace or extend them. Returns the
    client's traceparent ("" if none) when tracing (it is then replaced too)."""
    headers = head.headers
    trusted = policy.trusts(head.peer_ip)
    chain = ", ".join(headers.get_all("x-forwarded-for")) if owned & OWN_XFF else ""
    proto = headers.get("x-forwarded-proto") if trusted else None
    host = headers.get("x-forwarded-host") if trusted else None
    traceparent = (headers.get("traceparent") or "") if tracing else ""
    for name in ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"):
        headers.remove(name)
    if tracing:
        headers.remove("traceparent")
    if not trusted:
        headers.remove("x-real-ip")
        headers.remove("forwarded")
    peer = head.peer_ip
    if trusted and chain:
        head.client_ip = client_hop(chain, policy) or peer
        headers.append(_XFF, (chain + ", " + peer).encode("latin-1"))
    else:
        headers.append(_XFF, peer.encode())
    headers.append(_XFP, proto.encode("latin-1") if proto else head.scheme.encode())
    headers.append(_XFH, host.encode("latin-1") if host else head.authority)
    return traceparent


def client_hop(chain: str, policy: ForwardedPolicy) -> str | None:
    """The rightmost hop of an X-Forwarded-For chain that is not a trusted proxy (the
    leftmost when all are); None for an empty chain."""
    hops = [h.strip() for h in chain.split(",")]
    hops = [h for h in hops if h]
    if not hops:
        return None
    for hop in reversed(hops):
        if not policy.trusts(hop):
            return hop
    return hops[0]
