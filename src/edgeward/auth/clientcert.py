"""The `client_cert` method: the mTLS client certificate the listener verified names the consumer.

The TLS handshake already proved the client holds a certificate from `client_ca`
(`req.client_cert`, edgeward.tls.peer); this method only maps it to a consumer, looking up
the certificate's identities in the order of `match` (fingerprint, SAN URI, SAN DNS, SAN
email, subject CN), each a dict read on the index built at reload (directory.py); with
`consumer_by_cn`, a consumer named like the CN matches too (Kong mtls-auth `consumer_by`).

- no certificate (a plain listener, or `client_auth: optional` and none sent): None, the next
  method is asked;
- a certificate naming a consumer: that consumer;
- a certificate naming none: 403 `unknown_client_certificate`. Not 401: a 401 must carry a
  challenge the client can answer in HTTP (RFC 9110 §15.5.2) and there is none for a TLS
  certificate; the client presented valid credentials that grant nothing here (RFC 9110
  §15.5.4), as Envoy's RBAC answers an unlisted principal.
"""

from __future__ import annotations

from typing import Final

from edgeward.auth.certnames import dns_name, email
from edgeward.auth.config import ClientCertConfig
from edgeward.auth.consumer import Consumer
from edgeward.auth.context import AuthContext
from edgeward.auth.method import Failure, Method, Result
from edgeward.filters.api import Request
from edgeward.http.message import ClientCert

UNKNOWN: Final = "unknown_client_certificate"


class ClientCertMethod(Method):
    kind = "client_cert"

    def __init__(self, cfg: ClientCertConfig, ctx: AuthContext, realm: str) -> None:
        self.ctx = ctx
        self.match = tuple(cfg.match)
        self.by_cn = cfg.consumer_by_cn

    def authenticate(self, req: Request, now: float) -> Result:
        cert = req.client_cert
        if cert is None:
            return None
        consumer = self.find(cert)
        if consumer is None:
            return Failure(403, UNKNOWN, f"the client certificate (sha256 {cert.sha256}) "
                                         "names no consumer")
        return consumer

    def find(self, cert: ClientCert) -> Consumer | None:
        """The consumer `cert` names, or None: one dict read per identity looked at."""
        index = self.ctx.consumers.index
        for kind in self.match:
            table = index.by_cert[kind]
            if not table:
                continue
            found = _lookup(table, kind, cert)
            if found is not None:
                return found
        if self.by_cn and cert.cn:
            return index.by_name.get(cert.cn)
        return None


def _lookup(table: dict[str, Consumer], kind: str, cert: ClientCert) -> Consumer | None:
    found: Consumer | None = None
    if kind == "fingerprint":
        return table.get(cert.sha256)
    if kind == "cn":
        return table.get(cert.cn) if cert.cn else None
    if kind == "uri":
        for name in cert.uris:
            found = table.get(name)
            if found is not None:
                return found
    elif kind == "dns":
        for name in cert.dns:
            found = table.get(dns_name(name))
            if found is not None:
                return found
    else:
        for name in cert.emails:
            found = table.get(email(name))
            if found is not None:
                return found
    return None
