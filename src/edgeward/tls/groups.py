"""The key exchange groups a server offers: Mozilla's intermediate list, X25519:P-256:P-384.

Python's `ssl` can set one curve (`set_ecdh_curve`) but not a list, which would leave
OpenSSL 3's default (X25519, P-256, X448, P-521, P-384): Mozilla's intermediate and modern
configurations (and sslyze's check of them) reject X448 and P-521. The list is set with
OpenSSL's SSL_CTX_set1_groups_list control through the same checked hook as the session
ticket keys (tls/tickets.py); where that hook is refused, OpenSSL's default list stays, which
is still strong, only broader than Mozilla's.
"""

from __future__ import annotations

import ctypes
import ssl
from typing import Final

from edgeward.tls.tickets import TicketKeysUnsupported, _library

# Mozilla server-side TLS v5.7, intermediate and modern: `ssl_ecdh_curve X25519:prime256v1:
# secp384r1` (OpenSSL's names for the same groups).
MOZILLA_GROUPS: Final = "X25519:P-256:P-384"
_SET_GROUPS_LIST: Final = 92  # SSL_CTRL_SET_GROUPS_LIST


def restrict_groups(ctx: ssl.SSLContext, groups: str = MOZILLA_GROUPS) -> str | None:
    """Offer only `groups` on `ctx`; None when done, else why the default list stays."""
    try:
        lib = _library()
        pointer = lib.ctx_pointer(ctx)
    except TicketKeysUnsupported as exc:
        return str(exc)
    names = ctypes.create_string_buffer(groups.encode("ascii"))
    if lib.lib.SSL_CTX_ctrl(pointer, _SET_GROUPS_LIST, 0, names) != 1:
        return f"OpenSSL refused the group list {groups!r}"
    return None
