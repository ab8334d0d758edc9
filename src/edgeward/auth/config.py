"""Config of consumers (top-level `consumers:`) and of the authentication filters.

```yaml
consumers:
  alice:
    groups: [staff]
    api_keys: ["env:ALICE_KEY", "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73..."]
    password: env:ALICE_PASSWORD          # basic auth; the username is the name unless set
    jwt_subjects: [auth0|5f2a]            # JWT `sub` values that are this consumer
    rate_limit: {rate: 100/s}             # her own budget where a route limits by consumer
    metrics: true                         # label her in edgeward_consumer_requests_total
routes:
  - match: {path_prefix: /api}
    upstream: app
    filters:
      - auth:
          methods:                        # tried in order: the first success wins
            - jwt: {jwks: {upstream: idp}, issuers: [https://idp.example]}
            - api_key: {}
          allow: {groups: [staff]}        # else 403 forbidden
```
Credentials are references (`sha256:HEX`, `env:NAME` or the secret itself), see secrets.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from edgeward.auth import certnames
from edgeward.auth.secrets import check_reference
from edgeward.routing.keys import parse_key
from edgeward.structs import ConfigError, load_struct
from edgeward.values import Duration, Rate, doc

# --- consumers ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ConsumerLimitConfig:
    rate: Rate = field(metadata=doc("the consumer's sustained rate: N/s, N/m or N/h"))
    burst: int | None = field(
        default=None, metadata=doc("most requests at once; default one second of rate"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.rate > 0:
            problems.append(("rate", "must be above 0"))
        if self.burst is not None and self.burst < 1:
            problems.append(("burst", "must be at least 1"))
        return problems


@dataclass(frozen=True, kw_only=True)
class ConsumerConfig:
    groups: list[str] = field(
        default_factory=list, metadata=doc("groups the consumer belongs to (allow-lists)"))
    labels: dict[str, str] = field(
        default_factory=dict, metadata=doc("free-form tags, readable by filters"))
    api_keys: list[str] = field(
        default_factory=list,
        metadata=doc("API keys: sha256:HEX, env:VARIABLE or the key itself; kept as digests"))
    username: str | None = field(
        default=None, metadata=doc("basic-auth user name; default the consumer's name"))
    password: str | None = field(
        default=None,
        metadata=doc("basic-auth password: sha256:HEX, env:VARIABLE or the password; kept as "
                     "a digest"))
    jwt_subjects: list[str] = field(
        default_factory=list,
        metadata=doc("values of the JWT consumer claim (sub) that are this consumer, besides "
                     "its name"))
    client_certs: list[str] = field(
        default_factory=list,
        metadata=doc("client certificates that are this consumer (client_cert method): a "
                     "SHA-256 fingerprint (hex, colons allowed), or uri:, dns:, email:, cn: "
                     "and the name"))
    rate_limit: ConsumerLimitConfig | None = field(
        default=None,
        metadata=doc("own rate and burst where a route limits with key: consumer (Kong's "
                     "consumer-scoped rate-limiting)"))
    metrics: bool = field(
        default=False,
        metadata=doc("count this consumer's requests under its name in "
                     "edgeward_consumer_requests_total (off: bounded cardinality)"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for i, ref in enumerate(self.api_keys):
            reason = check_reference(ref)
            if reason is not None:
                problems.append((f"api_keys[{i}]", reason))
        if self.password is not None:
            reason = check_reference(self.password)
            if reason is not None:
                problems.append(("password", reason))
        for i, entry in enumerate(self.client_certs):
            reason = certnames.check(entry)
            if reason is not None:
                problems.append((f"client_certs[{i}]", reason))
        if self.username is not None and (not self.username or ":" in self.username):
            problems.append(("username", "must be non-empty without ':' (RFC 7617)"))
        return problems


def check_consumer_name(name: str) -> str | None:
    """Why `name` cannot name a consumer (it goes into headers, logs and metric labels)."""
    if not name or len(name) > 128:
        return "a consumer name is 1 to 128 characters"
    if not all(c.isalnum() or c in "-_.@" for c in name) or not name.isascii():
        return "a consumer name uses ASCII letters, digits and - _ . @ only"
    return None


# --- methods -----------------------------------------------------------------------------
# Asymmetric algorithms only unless a shared secret is configured: never `none`, and never
# an HS algorithm with a public key (the "alg confusion" attack).
ASYMMETRIC_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                "ES256", "ES384", "ES512", "EdDSA")
HMAC_ALGORITHMS: Final = ("HS256", "HS384", "HS512")
# Envoy jwt_authn `clock_skew_seconds` default: 60 s of leeway on exp and nbf.
DEFAULT_LEEWAY = 60.0
# A token without exp would be valid forever; APISIX jwt-auth requires it too.
DEFAULT_REQUIRED_CLAIMS: Final = ("exp",)
# Verified tokens remembered per filter per worker: 10,000 tokens of ~1 KB each is ~10 MB at
# most, and covers the active users of most APIs within a token lifetime.
DEFAULT_TOKEN_CACHE = 10_000
# Envoy jwt_authn remote_jwks cache_duration default: 5 minutes.
DEFAULT_JWKS_REFRESH = 300.0
# Refetch on an unknown kid at most once per 30 s: Nimbus JOSE's JWKSourceBuilder rate limit
# (Spring Security); also the wait before retrying a JWKS endpoint that failed.
DEFAULT_MIN_REFETCH = 30.0
# etcdctl-style 5 s for a control-plane fetch; the JWKS is fetched off the request path.
DEFAULT_JWKS_TIMEOUT = 5.0
DEFAULT_JWKS_PATH = "/.well-known/jwks.json"
# Kong key-auth `key_names: [apikey]`, looked for in headers and the query string.
DEFAULT_KEY_NAME = "apikey"
# Envoy ext_authz HTTP service timeout default: 200 ms.
DEFAULT_FORWARD_TIMEOUT = 0.2
# Traefik forwardAuth passes the client's credentials; these carry them.
DEFAULT_FORWARD_HEADERS: Final = ("authorization", "cookie")
# Cached decisions: 10 s bounds how long a revoked session keeps working; 10,000 entries.
DEFAULT_FORWARD_TTL = 10.0
DEFAULT_FORWARD_CACHE = 10_000
# Kong sets X-Consumer-Username/-ID; X-Consumer-Name reads as what it carries.
DEFAULT_CONSUMER_HEADER = "X-Consumer-Name"
DEFAULT_REALM = "edgeward"


def _header_name_problem(key: str, value: str | None) -> list[tuple[str, str]]:
    if value is None:
        return []
    try:
        spec = parse_key(f"header:{value}")
    except ValueError:
        return [(key, f"not a header name: {value!r}")]
    del spec
    return []


@dataclass(frozen=True, kw_only=True)
class JwksConfig:
    upstream: str | None = field(
        default=None, metadata=doc("named upstream serving the JWKS (pools, breaker apply)"))
    path: str = field(default=DEFAULT_JWKS_PATH, metadata=doc("JWKS path on that upstream"))
    url: str | None = field(
        default=None, metadata=doc("or a full http(s) URL (fetched in a thread, system CAs)"))
    refresh_interval: Duration = field(
        default=DEFAULT_JWKS_REFRESH,
        metadata=doc("refetch period when the response has no Cache-Control max-age "
                     "(Envoy: 5m)"))
    min_refetch_interval: Duration = field(
        default=DEFAULT_MIN_REFETCH,
        metadata=doc("at most one fetch per this interval for unknown kids and after failures "
                     "(Nimbus JOSE: 30s)"))
    timeout: Duration = field(default=DEFAULT_JWKS_TIMEOUT, metadata=doc("fetch deadline"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if (self.upstream is None) == (self.url is None):
            problems.append(("upstream", "give either upstream (with path) or url"))
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            problems.append(("url", "must be an http:// or https:// URL"))
        if not self.path.startswith("/"):
            problems.append(("path", "must start with /"))
        for key in ("refresh_interval", "min_refetch_interval", "timeout"):
            if getattr(self, key) <= 0:
                problems.append((key, "must be above 0"))
        return problems


@dataclass(frozen=True, kw_only=True)
class JwtConfig:
    algorithms: list[str] = field(
        default_factory=lambda: list(ASYMMETRIC_ALGORITHMS),
        metadata=doc("accepted alg values; HS256/384/512 only with secret; never none"))
    public_key: str | None = field(
        default=None, metadata=doc("inline PEM public key or JWK (JSON)"))
    public_key_file: str | None = field(
        default=None, metadata=doc("file holding a PEM public key, a JWK or a JWKS"))
    secret: str | None = field(
        default=None, metadata=doc("HS* shared secret: env:VARIABLE or the secret"))
    jwks: JwksConfig | None = field(default=None, metadata=doc("keys from a JWKS endpoint"))
    issuers: list[str] = field(
        default_factory=list, metadata=doc("accepted iss values; empty: any"))
    audiences: list[str] = field(
        default_factory=list, metadata=doc("accepted aud values (one must match); empty: any"))
    required_claims: list[str] = field(
        default_factory=lambda: list(DEFAULT_REQUIRED_CLAIMS),
        metadata=doc("claims a token must carry (APISIX requires exp)"))
    leeway: Duration = field(
        default=DEFAULT_LEEWAY, metadata=doc("clock skew allowed on exp/nbf (Envoy: 60s)"))
    header: str | None = field(
        default="authorization", metadata=doc("header carrying `Bearer TOKEN`; null: none"))
    cookie: str | None = field(default=None, metadata=doc("cookie carrying the token"))
    query: str | None = field(default=None, metadata=doc("query parameter carrying the token"))
    consumer_claim: str = field(
        default="sub", metadata=doc("claim naming the consumer (its name or jwt_subjects)"))
    unknown_consumer: Literal["allow", "deny"] = field(
        default="allow",
        metadata=doc("a valid token whose claim names no configured consumer: allow (as an "
                     "unconfigured consumer named by the claim) or deny (401)"))
    claims_to_headers: dict[str, str] = field(
        default_factory=dict,
        metadata=doc("claim -> upstream header (client copies removed first)"))
    cache_size: int = field(
        default=DEFAULT_TOKEN_CACHE, metadata=doc("verified tokens remembered per worker"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        sources = [k for k in ("public_key", "public_key_file", "secret", "jwks")
                   if getattr(self, k) is not None]
        if len(sources) != 1:
            problems.append(("public_key", "give exactly one of public_key, public_key_file, "
                                           "secret, jwks"))
        known = (*ASYMMETRIC_ALGORITHMS, *HMAC_ALGORITHMS)
        for i, alg in enumerate(self.algorithms):
            if alg not in known:
                problems.append((f"algorithms[{i}]", f"unknown or refused algorithm {alg!r} "
                                                     f"(known: {', '.join(known)})"))
        if not self.algorithms:
            problems.append(("algorithms", "name at least one algorithm"))
        hmac = [a for a in self.algorithms if a in HMAC_ALGORITHMS]
        if self.secret is not None:
            if len(hmac) != len(self.algorithms):
                problems.append(("algorithms", "with secret, only HS256/HS384/HS512 apply"))
            reason = check_reference(self.secret)
            if reason is not None or self.secret.startswith("sha256:"):
                problems.append(("secret", reason or "give the secret (env:VARIABLE or the "
                                                     "value): HMAC needs it, not its digest"))
        elif hmac:
            problems.append(("algorithms", f"{', '.join(hmac)} need a shared secret: never an "
                                           "HMAC with a public key"))
        if self.header is None and self.cookie is None and self.query is None:
            problems.append(("header", "give at least one of header, cookie, query"))
        problems.extend(_header_name_problem("header", self.header))
        for claim, header in self.claims_to_headers.items():
            problems.extend(_header_name_problem(f"claims_to_headers.{claim}", header))
        if self.leeway < 0:
            problems.append(("leeway", "must be 0 or more"))
        if self.cache_size < 0:
            problems.append(("cache_size", "must be 0 (no cache) or more"))
        return problems


@dataclass(frozen=True, kw_only=True)
class ApiKeyConfig:
    header: str | None = field(
        default=DEFAULT_KEY_NAME, metadata=doc("header carrying the key (Kong: apikey)"))
    query: str | None = field(
        default=DEFAULT_KEY_NAME, metadata=doc("query parameter carrying the key; null: none"))

    def check(self) -> list[tuple[str, str]]:
        problems = _header_name_problem("header", self.header)
        if self.header is None and self.query is None:
            problems.append(("header", "give header, query or both"))
        if self.query is not None and (not self.query or any(c in self.query for c in "&=#")):
            problems.append(("query", "must be a query parameter name"))
        return problems


@dataclass(frozen=True, kw_only=True)
class BasicConfig:
    """Basic auth against consumers' username/password (RFC 7617)."""

    realm: str | None = field(
        default=None, metadata=doc("realm of the challenge; default the auth filter's"))


@dataclass(frozen=True, kw_only=True)
class ForwardCacheConfig:
    key: list[str] = field(
        default_factory=lambda: ["header:authorization"],
        metadata=doc("request keys a decision depends on (client_ip, header:N, cookie:N, "
                     "query:N, path); a request missing one is not cached"))
    ttl: Duration = field(default=DEFAULT_FORWARD_TTL, metadata=doc("how long a decision holds"))
    max_entries: int = field(
        default=DEFAULT_FORWARD_CACHE, metadata=doc("decisions kept per worker"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.key:
            problems.append(("key", "name at least one key"))
        for i, spec in enumerate(self.key):
            try:
                kind = parse_key(spec).kind
            except ValueError as exc:
                problems.append((f"key[{i}]", str(exc)))
                continue
            if kind in ("route", "consumer"):
                problems.append((f"key[{i}]", f"{spec} is not a request key"))
        if self.ttl <= 0:
            problems.append(("ttl", "must be above 0"))
        if self.max_entries < 1:
            problems.append(("max_entries", "must be at least 1"))
        return problems


@dataclass(frozen=True, kw_only=True)
class ForwardConfig:
    upstream: str = field(metadata=doc("named upstream of the auth service. Required."))
    path: str = field(default="/", metadata=doc("path of the check on that service"))
    timeout: Duration = field(
        default=DEFAULT_FORWARD_TIMEOUT, metadata=doc("deadline of the check (Envoy: 200ms)"))
    request_headers: list[str] = field(
        default_factory=lambda: list(DEFAULT_FORWARD_HEADERS),
        metadata=doc("request headers sent to the service, besides X-Forwarded-*"))
    response_headers: list[str] = field(
        default_factory=list,
        metadata=doc("headers of a 2xx answer copied to the upstream request (Traefik "
                     "authResponseHeaders); client copies removed first"))
    consumer_header: str | None = field(
        default=None, metadata=doc("header of a 2xx answer naming the consumer"))
    failure_mode: Literal["deny", "allow"] = field(
        default="deny",
        metadata=doc("service unreachable, timed out or 5xx... deny: 503 auth_unavailable; "
                     "allow: let the request through unauthenticated"))
    cache: ForwardCacheConfig | None = field(
        default=None, metadata=doc("cache decisions by key for a TTL; off by default"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.path.startswith("/"):
            problems.append(("path", "must start with /"))
        if self.timeout <= 0:
            problems.append(("timeout", "must be above 0"))
        for key in ("request_headers", "response_headers"):
            for i, name in enumerate(getattr(self, key)):
                problems.extend(_header_name_problem(f"{key}[{i}]", name))
        problems.extend(_header_name_problem("consumer_header", self.consumer_header))
        return problems


# Certificate names that may identify a consumer, most specific first: a pinned fingerprint,
# then SAN URI (SPIFFE), DNS, email, then the subject CN: Envoy's RBAC `principal_name` looks at
# the URI SAN, then DNS SAN, then the subject. All on: a consumer is only matched by what its
# own `client_certs` lists, so each kind is opt-in per consumer already.
DEFAULT_CERT_MATCH: Final = ("fingerprint", "uri", "dns", "email", "cn")


@dataclass(frozen=True, kw_only=True)
class ClientCertConfig:
    """A verified mTLS client certificate (the listener's `client_auth`) names the consumer."""

    match: list[str] = field(
        default_factory=lambda: list(DEFAULT_CERT_MATCH),
        metadata=doc("which of the certificate's identities may name a consumer, in the order "
                     "they are looked up: fingerprint, uri, dns, email, cn"))
    consumer_by_cn: bool = field(
        default=False,
        metadata=doc("a consumer whose name is the certificate's CN matches without listing "
                     "it in client_certs (Kong mtls-auth consumer_by); off: every identity "
                     "is listed, as AWS IoT attaches certificates to things"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.match and not self.consumer_by_cn:
            problems.append(("match", "name at least one of " + ", ".join(DEFAULT_CERT_MATCH)
                             + " (or set consumer_by_cn)"))
        for i, kind in enumerate(self.match):
            if kind not in DEFAULT_CERT_MATCH:
                problems.append((f"match[{i}]", f"unknown {kind!r} (known: "
                                                f"{', '.join(DEFAULT_CERT_MATCH)})"))
            elif kind in self.match[:i]:
                problems.append((f"match[{i}]", f"{kind} is listed twice"))
        return problems


# Method kinds of `auth.methods[]`, and the filter kinds that run one method alone.
METHODS: Final[dict[str, type]] = {
    "jwt": JwtConfig, "api_key": ApiKeyConfig, "basic": BasicConfig, "forward": ForwardConfig,
    "client_cert": ClientCertConfig,
}


@dataclass(frozen=True, kw_only=True)
class AllowConfig:
    consumers: list[str] = field(default_factory=list, metadata=doc("consumer names allowed"))
    groups: list[str] = field(default_factory=list, metadata=doc("consumer groups allowed"))


@dataclass(frozen=True, kw_only=True)
class AuthConfig:
    methods: list[Any] = field(
        metadata=doc("methods tried in order, each {jwt|api_key|basic|forward|client_cert: "
                     "config}; the first success wins. Required."))
    allow: AllowConfig | None = field(
        default=None,
        metadata=doc("consumers and groups allowed on the route; others get 403 forbidden"))
    consumer_header: str | None = field(
        default=DEFAULT_CONSUMER_HEADER,
        metadata=doc("upstream header carrying the consumer's name (client copies removed); "
                     "null: none"))
    realm: str = field(default=DEFAULT_REALM, metadata=doc("realm of WWW-Authenticate"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        read_methods(self.methods, "methods", problems)
        problems.extend(_header_name_problem("consumer_header", self.consumer_header))
        if '"' in self.realm or "\\" in self.realm:
            problems.append(("realm", "must not contain quotes or backslashes"))
        return problems

    def parsed_methods(self) -> list[tuple[str, Any]]:
        problems: list[tuple[str, str]] = []
        found = read_methods(self.methods, "methods", problems)
        if problems:
            raise ValueError("; ".join(f"{k}: {r}" for k, r in problems))
        return found


def read_methods(raw: list[Any], path: str, problems: list[tuple[str, str]]
                 ) -> list[tuple[str, Any]]:
    """`methods:` entries -> [(kind, config)], problems under `path`."""
    found: list[tuple[str, Any]] = []
    if not raw:
        problems.append((path, "name at least one method"))
    for i, entry in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(entry, dict) or len(entry) != 1:
            problems.append((where, f"expected one of {{{', '.join(METHODS)}: config}}"))
            continue
        ((kind, value),) = entry.items()
        cls = METHODS.get(kind)
        if cls is None:
            problems.append((f"{where}.{kind}",
                             f"unknown method (known: {', '.join(METHODS)})"))
            continue
        try:
            found.append((kind, load_struct(cls, value, path=f"{where}.{kind}")))
        except ConfigError as exc:
            problems.extend((p.path, p.reason) for p in exc.problems)
    return found


def client_cert_paths(kind: str, cfg: Any) -> list[str]:
    """Key paths under a filter entry of `kind` that are `client_cert` methods."""
    if kind == "client_cert":
        return [""]
    if kind != "auth" or not isinstance(cfg, AuthConfig):
        return []
    return [f"methods[{i}].client_cert" for i, entry in enumerate(cfg.methods)
            if isinstance(entry, dict) and "client_cert" in entry]
