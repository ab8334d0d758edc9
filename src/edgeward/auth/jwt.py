"""The `jwt` method: a bearer token signed with a configured or published key.

Verification (PyJWT over `cryptography`) checks the signature with a key fit for the token's
`alg` (jwks.py), then exp/nbf with `leeway`, `iss`, `aud` and the required claims. The
consumer is the configured one whose name or `jwt_subjects` holds the `consumer_claim`, else
(with `unknown_consumer: allow`) an unconfigured consumer of that name. Verified tokens are
cached (tokens.py) with the header fields their claims make, so a token seen again costs a
dict lookup and no signature check.
"""

from __future__ import annotations

import binascii
import json
import logging
import math
import time
from base64 import urlsafe_b64decode
from typing import Any, Final

import jwt as pyjwt

from edgeward.auth.config import JwtConfig
from edgeward.auth.consumer import Consumer
from edgeward.auth.context import AuthContext
from edgeward.auth.jwks import Fetch, JwksSource, KeySet, url_fetcher
from edgeward.auth.method import Failure, Method, Outcome, Result
from edgeward.auth.secrets import resolve_secret
from edgeward.auth.tokens import TokenCache
from edgeward.filters.api import Request
from edgeward.redact import redact_url

log = logging.getLogger("edgeward.auth")

# Longer than any JWT in practice (Envoy's max header size is 60 KiB; IdP tokens are ~1 KB):
# a larger "token" is refused before any parsing.
MAX_TOKEN_BYTES: Final = 16 * 1024


class Verified:
    """What a verified token admits: its consumer and the header fields its claims make."""

    __slots__ = ("consumer", "fields")

    def __init__(self, consumer: Consumer, fields: list[tuple[str, str]]) -> None:
        self.consumer = consumer
        self.fields = fields


def _invalid(detail: str, status: int = 401) -> Failure:
    return Failure(status, "unauthenticated", detail, "invalid_token")


class JwtMethod(Method):
    kind = "jwt"

    def __init__(self, cfg: JwtConfig, ctx: AuthContext, realm: str) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.realm = realm
        self.allowed = frozenset(cfg.algorithms)
        self.header = cfg.header.lower() if cfg.header else None
        self.cache: TokenCache[Verified] = TokenCache(cfg.cache_size)
        self.leeway = cfg.leeway
        self.static: KeySet | None = None
        self.source: JwksSource | None = None
        self._options: Any = {"require": list(cfg.required_claims),
                                         "verify_aud": bool(cfg.audiences)}
        if cfg.jwks is not None:
            self.source = JwksSource(self._fetcher(cfg, ctx), cfg.jwks, self._label(cfg))
        elif cfg.secret is not None:
            self.static = KeySet.from_secret(resolve_secret(cfg.secret, ctx.environ).encode())
        elif cfg.public_key is not None:
            self.static = KeySet.from_text(cfg.public_key)
        elif cfg.public_key_file is not None:
            with open(cfg.public_key_file, encoding="utf-8") as f:
                self.static = KeySet.from_text(f.read())

    @staticmethod
    def _label(cfg: JwtConfig) -> str:
        jwks = cfg.jwks
        assert jwks is not None
        return redact_url(jwks.url) if jwks.url else f"upstream {jwks.upstream}{jwks.path}"

    @staticmethod
    def _fetcher(cfg: JwtConfig, ctx: AuthContext) -> Fetch:
        jwks = cfg.jwks
        assert jwks is not None
        if jwks.url is not None:
            return url_fetcher(jwks.url, jwks.timeout)
        upstream, path, timeout = jwks.upstream or "", jwks.path, jwks.timeout

        async def fetch() -> tuple[int, str | None, bytes]:
            resp = await ctx.subrequest(upstream, "GET", path,
                                        [("accept", "application/json")], timeout)
            cache_control = next((v for n, v in resp.headers
                                  if n.lower() == "cache-control"), None)
            return resp.status, cache_control, resp.body

        return fetch

    def start(self) -> None:
        """Fetch the JWKS now (the first requests then find keys ready)."""
        if self.source is not None:
            self.source.maybe_refresh(time.monotonic())

    def challenge(self) -> str:
        return f'Bearer realm="{self.realm}"'

    def token(self, req: Request) -> str | None:
        if self.header is not None:
            value = req.headers.get(self.header)
            if value is not None:
                scheme, _, token = value.partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    return token.strip()
        cfg = self.cfg
        if cfg.cookie is not None:
            found = req.cookie(cfg.cookie)
            if found:
                return found
        if cfg.query is not None:
            found = req.query(cfg.query)
            if found:
                return found
        return None

    def authenticate(self, req: Request, now: float) -> Result:
        token = self.token(req)
        if token is None:
            return None
        keys = self.static
        source = self.source
        if source is not None:
            source.maybe_refresh(req.started or time.monotonic())
            keys = source.keys
        generation = keys.generation if keys is not None else 0
        hit = self.cache.get(token, now, generation)
        if hit is not None:
            return self._admit(req, hit)
        if len(token) > MAX_TOKEN_BYTES:
            return _invalid("the token is too large")
        header = _header(token)
        if header is None:
            return _invalid("the token is not a JWT")
        alg = header.get("alg")
        kid = header.get("kid")
        if not isinstance(alg, str) or alg not in self.allowed:
            return _invalid("the token's algorithm is not accepted")
        if kid is not None and not isinstance(kid, str):
            return _invalid("the token's kid is not a string")
        key = keys.find(kid, alg) if keys is not None else None
        if key is None and source is not None:
            return self._after_refetch(req, token, kid, alg, now)
        return self._verify(req, token, keys, kid, alg, now)

    async def _after_refetch(self, req: Request, token: str, kid: str | None, alg: str,
                             now: float) -> Outcome:
        source = self.source
        assert source is not None
        if await source.refetch(req.started or time.monotonic()):
            keys = source.keys
            if keys is not None and keys.find(kid, alg) is not None:
                return self._verify(req, token, keys, kid, alg, time.time())
        if source.keys is None:
            return Failure(503, "auth_unavailable", "the token's keys could not be fetched")
        return _invalid("the token's key is unknown")

    def _verify(self, req: Request, token: str, keys: KeySet | None, kid: str | None,
                alg: str, now: float) -> Outcome:
        key = keys.find(kid, alg) if keys is not None else None
        if key is None or alg not in key.algorithms:
            return _invalid("the token's key is unknown" if key is None else
                            "the token's algorithm does not fit its key")
        cfg = self.cfg
        try:
            claims = pyjwt.decode(
                token, key.key, algorithms=[alg], audience=cfg.audiences or None,
                issuer=cfg.issuers or None, leeway=self.leeway, options=self._options)
        except pyjwt.ExpiredSignatureError:
            return _invalid("the token has expired")
        except pyjwt.ImmatureSignatureError:
            return _invalid("the token is not valid yet")
        except pyjwt.InvalidIssuerError:
            return _invalid("the token's issuer is not accepted")
        except pyjwt.InvalidAudienceError:
            return _invalid("the token's audience is not accepted")
        except pyjwt.MissingRequiredClaimError as exc:
            return _invalid(f"the token lacks the {exc.claim} claim")
        except (pyjwt.PyJWTError, ValueError, TypeError):
            return _invalid("the token's signature or claims are invalid")
        verified = self._conclude(claims)
        if verified is None:
            return _invalid("the token names no known consumer")
        assert keys is not None
        exp, nbf = claims.get("exp"), claims.get("nbf")
        expires = float(exp) + self.leeway if isinstance(exp, int | float) else math.inf
        not_before = float(nbf) - self.leeway if isinstance(nbf, int | float) else -math.inf
        self.cache.put(token, verified, not_before, expires, keys.generation)
        return self._admit(req, verified)

    def _conclude(self, claims: dict[str, Any]) -> Verified | None:
        cfg = self.cfg
        value = claims.get(cfg.consumer_claim)
        name = value if isinstance(value, str) else None
        consumer = self.ctx.consumers.index.by_subject.get(name) if name else None
        if consumer is None:
            if cfg.unknown_consumer == "deny" or not name:
                return None
            consumer = Consumer(name, configured=False)
        fields: list[tuple[str, str]] = []
        for claim, header in cfg.claims_to_headers.items():
            text = _claim_text(claims.get(claim))
            if text is not None:
                fields.append((header, text))
        return Verified(consumer, fields)

    @staticmethod
    def _admit(req: Request, verified: Verified) -> Consumer:
        for header, text in verified.fields:
            req.headers.set(header, text)
        return verified.consumer


def _header(token: str) -> dict[str, Any] | None:
    """The JOSE header, read only to choose the key: PyJWT's own reader checks every segment
    character by character (twice the cost of the signature check on a 2048-bit RSA token),
    and `pyjwt.decode` checks the whole token again anyway."""
    first, dot, rest = token.partition(".")
    if not dot or rest.count(".") != 1 or len(first) > 1024:
        return None
    try:
        found = json.loads(urlsafe_b64decode(first + "=" * (-len(first) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return found if isinstance(found, dict) else None


def _claim_text(value: object) -> str | None:
    """A claim as header text; None when absent or not representable on one line."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = ",".join(value)
    else:
        text = json.dumps(value, separators=(",", ":"))
    if any(c in text for c in "\r\n\x00") or not text.isascii():
        return None
    return text
