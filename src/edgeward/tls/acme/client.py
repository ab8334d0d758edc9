"""The ACME protocol (RFC 8555): directory, nonces, account, order, challenges, finalize.

    client = AcmeClient(directory_url, account_key, transport)
    await client.register(email)
    chain_pem = await client.obtain(domains, cert_key, responder, ["http-01", "tls-alpn-01"])

Every POST is a JWS signed with the account key (the first with its JWK, the rest with the
account URL as `kid`); a `badNonce` answer is retried with the fresh nonce it carries, as RFC
8555 6.5 asks. Errors become `AcmeError` with the CA's problem type and detail.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from edgeward.tls.acme.challenges import ChallengeResponder
from edgeward.tls.acme.jws import AccountKey, b64, key_authorization
from edgeward.tls.acme.transport import Response, Transport
from edgeward.tls.certs import PrivateKey

# badNonce retries per request (RFC 8555 6.5: clients should retry; certbot retries once).
NONCE_RETRIES = 3
# How often to ask about an authorization or order still pending (certbot polls every 1-3 s;
# pebble and Let's Encrypt validate within seconds). A Retry-After answer is honoured.
POLL_INTERVAL = 1.0
# How long one order may take from creation to certificate (Let's Encrypt orders stay
# pending for days, but validation that has not finished in 5 minutes has failed).
ORDER_DEADLINE = 300.0


class AcmeError(Exception):
    """The CA refused a request or an order failed: `kind` is the problem type's last part."""

    def __init__(self, what: str, kind: str = "", detail: str = "") -> None:
        self.kind, self.detail = kind, detail
        super().__init__(f"{what}: {kind or 'error'}: {detail}" if detail or kind else what)


class AcmeClient:
    """One account at one ACME directory."""

    def __init__(self, directory_url: str, account_key: AccountKey, transport: Transport,
                 account_url: str | None = None) -> None:
        self.directory_url = directory_url
        self.key = account_key
        self.transport = transport
        self.account_url = account_url
        self._directory: dict[str, Any] | None = None
        self._nonce: str | None = None

    async def directory(self) -> dict[str, Any]:
        if self._directory is None:
            resp = await self.transport.get(self.directory_url)
            if resp.status != 200:
                raise AcmeError(f"directory {self.directory_url}: HTTP {resp.status}")
            self._directory = resp.json()
        return self._directory

    async def _fresh_nonce(self) -> str:
        kept = self._nonce
        if kept is not None:
            self._nonce = None
            return kept
        resp = await self.transport.head((await self.directory())["newNonce"])
        fresh = resp.headers.get("replay-nonce")
        if not fresh:
            raise AcmeError("newNonce: no Replay-Nonce header")
        return fresh

    async def post(self, url: str, payload: dict[str, Any] | None, *,
                   use_jwk: bool = False) -> Response:
        """A signed POST (`payload` None: POST-as-GET); raises AcmeError on a problem."""
        for _ in range(NONCE_RETRIES + 1):
            protected: dict[str, Any] = {"nonce": await self._fresh_nonce(), "url": url}
            if use_jwk or self.account_url is None:
                protected["jwk"] = self.key.jwk()
            else:
                protected["kid"] = self.account_url
            resp = await self.transport.post(url, self.key.sign(protected, payload))
            self._nonce = resp.headers.get("replay-nonce")
            if resp.status < 400:
                return resp
            problem = _problem(resp)
            if problem.kind != "badNonce":
                raise problem
        raise AcmeError(f"POST {url}", "badNonce", "the CA kept refusing fresh nonces")

    async def register(self, email: str | None) -> str:
        """Create (or find) the account of this key; its URL (the `kid`)."""
        payload: dict[str, Any] = {"termsOfServiceAgreed": True}
        if email:
            payload["contact"] = [f"mailto:{email}"]
        resp = await self.post((await self.directory())["newAccount"], payload, use_jwk=True)
        location = resp.headers.get("location")
        if not location:
            raise AcmeError("newAccount: no Location header")
        self.account_url = location
        return location

    async def obtain(self, domains: list[str], cert_key: PrivateKey,
                     responder: ChallengeResponder, challenges: list[str]) -> bytes:
        """Order a certificate for `domains`; the PEM chain (leaf first)."""
        if self.account_url is None:
            raise AcmeError("obtain: register the account first")
        deadline = time.monotonic() + ORDER_DEADLINE
        order_resp = await self.post((await self.directory())["newOrder"], {
            "identifiers": [{"type": "dns", "value": d} for d in domains]})
        order_url = order_resp.headers.get("location", "")
        order = order_resp.json()
        for authz_url in order["authorizations"]:
            await self._authorize(authz_url, responder, challenges, deadline)
        await self.post(order["finalize"], {"csr": b64(csr_der(domains, cert_key))})
        order = await self._poll(order_url, ("valid",), deadline, "order")
        resp = await self.post(order["certificate"], None)
        if b"-----BEGIN CERTIFICATE-----" not in resp.body:
            raise AcmeError("certificate download: no PEM chain in the answer")
        return resp.body

    async def _authorize(self, url: str, responder: ChallengeResponder, preferred: list[str],
                         deadline: float) -> None:
        authz = (await self.post(url, None)).json()
        if authz.get("status") == "valid":
            return
        domain = authz["identifier"]["value"]
        offered = {c["type"]: c for c in authz.get("challenges", [])}
        kind = next((k for k in preferred if k in offered), None)
        if kind is None:
            raise AcmeError(f"authorization for {domain}", "unsupported",
                            f"the CA offers {sorted(offered)}, we do {preferred}")
        challenge = offered[kind]
        answer = key_authorization(challenge["token"], self.key.thumbprint())
        if kind == "http-01":
            responder.add_http01(challenge["token"], answer)
        else:
            responder.add_tls_alpn01(domain, answer, time.time())
        try:
            await self.post(challenge["url"], {})
            await self._poll(url, ("valid",), deadline, f"authorization for {domain}")
        finally:
            responder.remove_http01(challenge["token"])
            responder.remove_tls_alpn01(domain)

    async def _poll(self, url: str, done: tuple[str, ...], deadline: float,
                    what: str) -> dict[str, Any]:
        while True:
            resp = await self.post(url, None)
            body: dict[str, Any] = resp.json()
            status = body.get("status")
            if status in done:
                return body
            if status == "invalid":
                raise _failure(what, body)
            if time.monotonic() >= deadline:
                raise AcmeError(what, "timeout", f"still {status} after {ORDER_DEADLINE:.0f}s")
            await asyncio.sleep(_retry_after(resp))


def csr_der(domains: list[str], key: PrivateKey) -> bytes:
    """A CSR for `domains` (CN the first, every name in the SAN) signed with `key`."""
    builder = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]),
                              critical=False))
    algorithm = None if _is_edwards(key) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.DER)


def _is_edwards(key: PrivateKey) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ed448, ed25519
    return isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)


def _problem(resp: Response) -> AcmeError:
    try:
        body = resp.json()
    except ValueError:
        body = {}
    kind = str(body.get("type", "")).rpartition(":")[2]
    return AcmeError(f"HTTP {resp.status}", kind, str(body.get("detail", "")))


def _failure(what: str, body: dict[str, Any]) -> AcmeError:
    error = body.get("error") or next(
        (c.get("error") for c in body.get("challenges", []) if c.get("error")), None) or {}
    kind = str(error.get("type", "")).rpartition(":")[2]
    return AcmeError(f"{what} is invalid", kind, str(error.get("detail", "")))


def _retry_after(resp: Response) -> float:
    try:
        return min(max(float(resp.headers.get("retry-after", POLL_INTERVAL)), 0.1), 30.0)
    except ValueError:
        return POLL_INTERVAL
