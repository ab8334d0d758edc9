"""Verification keys: from PEM, JWK, a JWKS document, or a JWKS endpoint followed over time.

`KeySet` maps each key to the algorithms it may verify (from its `alg`, else its type and
curve), so a token's `alg` must be both allowed by the config and fit for the key: an HS256
token is never checked against an RSA key, and `none` is never allowed.

`JwksSchedule` is the sans-I/O part of following an endpoint: when the next refresh is due
(the response's Cache-Control max-age, else the configured interval), and whether a fetch may
start now: at most one per `min_refetch_interval`, whether it is asked for by an unknown
`kid` or follows a failure, so random kids cannot cause a storm of fetches. `JwksSource` is the
shell: it fetches in the background (never on a request's path, except that a request holding
an unknown kid may wait for a fetch the schedule allows), keeps the last good keys while the
endpoint fails, and counts its fetches.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from edgeward.auth.config import HMAC_ALGORITHMS, JwksConfig

log = logging.getLogger("edgeward.auth")

RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
CURVE_ALGORITHM: Final = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512",
                          "P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
# A JWKS max-age longer than a day is capped: rotation is then noticed by the unknown-kid
# refetch anyway, but a lost signing key must not stay trusted for longer.
MAX_CACHE_SECONDS: Final = 86_400.0
# The largest JWKS document accepted (Google's is ~2 KB; 64 KiB fits hundreds of keys).
MAX_JWKS_BYTES: Final = 64 * 1024
_MAX_AGE: Final = re.compile(r"(?:^|[,\s])max-age\s*=\s*(\d+)", re.IGNORECASE)


class VerifyKey:
    __slots__ = ("kid", "key", "algorithms")

    def __init__(self, kid: str | None, key: Any, algorithms: frozenset[str]) -> None:
        self.kid = kid
        self.key = key
        self.algorithms = algorithms


def algorithms_for(key: Any) -> frozenset[str]:
    """The algorithms a public key (cryptography object) or a secret (bytes) may verify."""
    if isinstance(key, bytes):
        return frozenset(HMAC_ALGORITHMS)
    if isinstance(key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = CURVE_ALGORITHM.get(key.curve.name)
        return frozenset({alg}) if alg else frozenset()
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    return frozenset()


def key_from_jwk(data: dict[str, Any]) -> VerifyKey | None:
    """One JWK -> a VerifyKey; None for a key not for signatures or of no usable kind."""
    if data.get("use", "sig") != "sig" or data.get("kty") == "oct":
        return None  # encryption keys, and shared secrets are never taken from a JWKS
    try:
        key = pyjwt.PyJWK(data).key
    except (pyjwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        log.warning("JWK %s skipped: %s", data.get("kid", "(no kid)"), exc)
        return None
    fit = algorithms_for(key)
    alg = data.get("alg")
    if isinstance(alg, str):
        fit = fit & {alg}
    kid = data.get("kid")
    return VerifyKey(kid if isinstance(kid, str) else None, key, fit) if fit else None


class KeySet:
    """Keys by kid (and the keys without one); `generation` changes with every new set."""

    __slots__ = ("by_kid", "unnamed", "generation")

    _generations = 0

    def __init__(self, keys: Iterable[VerifyKey]) -> None:
        self.by_kid: dict[str, VerifyKey] = {}
        self.unnamed: list[VerifyKey] = []
        for k in keys:
            if k.kid is None:
                self.unnamed.append(k)
            else:
                self.by_kid.setdefault(k.kid, k)
        KeySet._generations += 1
        self.generation = KeySet._generations

    def find(self, kid: str | None, alg: str) -> VerifyKey | None:
        """The key for a token's kid; without a kid, or when no key has a name (a PEM public
        key, a shared secret: a kid can name none of them), the one key fit for `alg` (if
        only one)."""
        if kid is not None and (self.by_kid or not self.unnamed):
            return self.by_kid.get(kid)
        fit = [k for k in (*self.unnamed, *self.by_kid.values()) if alg in k.algorithms]
        return fit[0] if len(fit) == 1 else None

    def __len__(self) -> int:
        return len(self.by_kid) + len(self.unnamed)

    @staticmethod
    def from_jwks(text: str | bytes) -> KeySet:
        """A JWKS document (`{"keys": [...]}`) or a single JWK; ValueError if it has no key."""
        data = json.loads(text)
        items = data.get("keys") if isinstance(data, dict) and "keys" in data else [data]
        if not isinstance(items, list):
            raise ValueError("a JWKS has a list under keys")
        keys = [k for k in (key_from_jwk(i) for i in items if isinstance(i, dict)) if k]
        if not keys:
            raise ValueError("no usable signature key in the JWKS")
        return KeySet(keys)

    @staticmethod
    def from_text(text: str) -> KeySet:
        """A PEM public key, a JWK or a JWKS."""
        if text.lstrip().startswith("-----BEGIN"):
            key = load_pem_public_key(text.encode())
            fit = algorithms_for(key)
            if not fit:
                raise ValueError("the PEM key is of no kind a JWT is signed with")
            return KeySet([VerifyKey(None, key, fit)])
        return KeySet.from_jwks(text)

    @staticmethod
    def from_secret(secret: bytes) -> KeySet:
        return KeySet([VerifyKey(None, secret, frozenset(HMAC_ALGORITHMS))])


def max_age(cache_control: str | None) -> float | None:
    if not cache_control or "no-store" in cache_control.lower():
        return None
    found = _MAX_AGE.search(cache_control)
    return float(found.group(1)) if found else None


class JwksSchedule:
    """When a JWKS fetch is due and whether one may start (sans-I/O: `now` is given)."""

    __slots__ = ("refresh", "min_interval", "last_start", "next_refresh")

    def __init__(self, refresh: float, min_interval: float) -> None:
        self.refresh = refresh
        self.min_interval = min_interval
        self.last_start: float | None = None
        self.next_refresh = 0.0

    def may_start(self, now: float) -> bool:
        last = self.last_start
        return last is None or now - last >= self.min_interval

    def due(self, now: float) -> bool:
        return now >= self.next_refresh and self.may_start(now)

    def started(self, now: float) -> None:
        self.last_start = now

    def succeeded(self, now: float, cache_seconds: float | None) -> None:
        period = self.refresh if cache_seconds is None else cache_seconds
        self.next_refresh = now + min(max(period, self.min_interval), MAX_CACHE_SECONDS)

    def failed(self, now: float) -> None:
        self.next_refresh = now + self.min_interval


# fetch() -> (status, Cache-Control value or None, body)
Fetch = Callable[[], Awaitable[tuple[int, str | None, bytes]]]


def url_fetcher(url: str, timeout: float) -> Fetch:
    """Fetch a JWKS by URL (https with the system's CAs) in a thread: off the event loop."""

    def get() -> tuple[int, str | None, bytes]:
        req = urllib.request.Request(url, headers={"accept": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only
            return resp.status, resp.headers.get("cache-control"), resp.read(MAX_JWKS_BYTES + 1)

    async def fetch() -> tuple[int, str | None, bytes]:
        return await asyncio.to_thread(get)

    return fetch


class JwksSource:
    """Keys from a JWKS endpoint, refreshed in the background; the last good set is kept."""

    def __init__(self, fetch: Fetch, cfg: JwksConfig, label: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fetcher = fetch
        self.label = label
        self.schedule = JwksSchedule(cfg.refresh_interval, cfg.min_refetch_interval)
        self.timeout = cfg.timeout
        self.clock = clock
        self.keys: KeySet | None = None
        self.fetches = 0
        self.failures = 0
        self._inflight: asyncio.Task[None] | None = None

    def maybe_refresh(self, now: float) -> None:
        """Start a background fetch if one is due (called with each request: cheap). Without
        a running loop (a config compiled outside the gateway) the first request fetches."""
        if self._inflight is None and self.schedule.due(now):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return
            self._start(now)

    async def refetch(self, now: float) -> bool:
        """For an unknown kid: wait for the fetch in flight, or start one if the schedule
        allows; False when no fetch may happen now (the kid stays unknown)."""
        task = self._inflight
        if task is None:
            if not self.schedule.may_start(now):
                return False
            task = self._start(now)
        await asyncio.shield(task)
        return True

    def _start(self, now: float) -> asyncio.Task[None]:
        self.schedule.started(now)
        task = asyncio.get_running_loop().create_task(self._fetch())
        self._inflight = task
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight = None

    async def _fetch(self) -> None:
        self.fetches += 1
        try:
            status, cache_control, body = await asyncio.wait_for(self.fetcher(), self.timeout)
            if status != 200:
                raise ValueError(f"status {status}")
            if len(body) > MAX_JWKS_BYTES:
                raise ValueError(f"larger than {MAX_JWKS_BYTES} bytes")
            keys = KeySet.from_jwks(body)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the last good keys
            self.failures += 1
            self.schedule.failed(self.clock())
            kept = f"keeping {len(self.keys)} keys" if self.keys else "no keys yet"
            log.warning("JWKS %s: fetch failed (%s); %s", self.label, _describe(exc), kept)
            return
        self.keys = keys
        self.schedule.succeeded(self.clock(), max_age(cache_control))


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
