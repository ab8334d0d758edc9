"""TLS settings: `tls:` on a listener (termination) and on an upstream (origination).

    tls:
      certificates:
        - {cert: /etc/edgeward/api.pem, key: /etc/edgeward/api.key}
        - {cert: /etc/edgeward/wild.pem, key: /etc/edgeward/wild.key}
      min_version: "1.2"
      client_ca: /etc/edgeward/clients-ca.pem
      client_auth: optional
      acme: {email: ops@example.com, domains: [example.com, www.example.com]}

    upstreams:
      orders:
        tls: {ca: /etc/edgeward/internal-ca.pem, server_name: orders.internal}

The first certificate is the default one, served to clients that send no SNI or a name no
certificate covers (as nginx's first `server` block and Envoy's first filter chain). Files are
read and validated by tls/context.py; these classes only check the shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from edgeward.values import Duration, doc

TlsVersion = Literal["1.2", "1.3"]
Alpn = Literal["h2", "http/1.1"]
ClientAuth = Literal["none", "optional", "required"]
Challenge = Literal["http-01", "tls-alpn-01"]
AcmeKeyType = Literal["ecdsa-p256", "rsa-2048"]
LockKind = Literal["file", "redis"]

# --- defaults, each with its precedent ---------------------------------------------------------
# Mozilla "intermediate" (server-side TLS guidelines v5.7): TLS 1.2 and 1.3, which every client
# of the last decade speaks; "modern" (1.3 only) still locks out older Android and Java 8.
DEFAULT_MIN_VERSION: Final[TlsVersion] = "1.2"
# Mozilla intermediate cipher list for TLS 1.2 (TLS 1.3 suites are all strong and fixed by
# OpenSSL). AEAD with forward secrecy only: no CBC, no RSA key exchange, no SHA-1 MACs.
MOZILLA_INTERMEDIATE_CIPHERS: Final = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
))
DEFAULT_CIPHERS: Final = MOZILLA_INTERMEDIATE_CIPHERS
# h2 first, then http/1.1, as nginx `http2 on`, Caddy and Envoy offer. h2 is left out of the
# handshake when server.http2.enabled is false (listening.py), so no client negotiates a
# protocol the listener would not speak.
DEFAULT_ALPN: Final[tuple[Alpn, ...]] = ("h2", "http/1.1")
# ALPN protocols a listener can serve; `alpn` entries outside it are refused.
LISTENER_ALPN: Final[frozenset[str]] = frozenset({"h2", "http/1.1"})
# ALPN protocols an upstream connection can speak today.
SERVED_ALPN: Final[frozenset[str]] = frozenset({"http/1.1"})
# No client certificates unless asked for (nginx ssl_verify_client off, Envoy's default).
DEFAULT_CLIENT_AUTH: Final[ClientAuth] = "none"
# Session tickets on, as nginx `ssl_session_tickets on` and Caddy; keys rotate (below), which is
# what Mozilla's guideline asks before turning them on.
DEFAULT_SESSION_TICKETS: Final = True
# Caddy rotates its session ticket keys every 12 h; Go's crypto/tls every 24 h.
DEFAULT_TICKET_ROTATION: Final = 12 * 3600.0
# Certificate and key files are polled once a second, like the config file (config/sources.py):
# a swapped Kubernetes Secret or a renewed certbot file is served within ~1 s.
DEFAULT_WATCH_INTERVAL: Final = 1.0
# A changed file is loaded once its stamp has been still this long, so a cert written a moment
# before its key is not refused as a mismatched pair (Traefik debounces its file provider by 2 s;
# certbot and cert-manager write both files within milliseconds).
DEFAULT_SETTLE: Final = 0.5

# Let's Encrypt production, the default of Caddy, Traefik (caServer) and certbot.
LETS_ENCRYPT_DIRECTORY: Final = "https://acme-v02.api.letsencrypt.org/directory"
# HTTP-01 first: it never disturbs clients of a name being renewed (TLS-ALPN-01 answers that
# name's handshakes with the challenge certificate while it is validated; see docs/tls.md).
DEFAULT_CHALLENGES: Final[tuple[Challenge, ...]] = ("http-01", "tls-alpn-01")
# certbot's and Caddy's default: ACME state under /var/lib (Caddy: $XDG_DATA_HOME/caddy).
DEFAULT_ACME_STORAGE: Final = "/var/lib/edgeward/acme"
# ECDSA P-256: Caddy's default key type; smaller and faster handshakes than RSA.
DEFAULT_ACME_KEY_TYPE: Final[AcmeKeyType] = "ecdsa-p256"
# Renew when 2/3 of the lifetime has passed: 30 days before the end of a 90-day certificate, as
# certbot and Let's Encrypt recommend (Caddy: also 1/3 of the lifetime left).
DEFAULT_RENEW_AT: Final = 2.0 / 3.0
# First retry after a failed order one minute later, doubling up to 6 h (certmagic's schedule
# starts at 1 min and settles at 6 h between attempts).
DEFAULT_RETRY_BASE: Final = 60.0
DEFAULT_RETRY_MAX: Final = 6 * 3600.0
# A file lock in the storage directory: enough for the workers of one host. Redis when several
# hosts share names (Caddy's storage lock, Traefik EE's distributed ACME).
DEFAULT_LOCK: Final[LockKind] = "file"
# The order lock expires if its holder dies: 10 min covers an order with slow validation
# (certmagic's lock is considered stale after 2 h of no update; we refresh nothing, so shorter).
DEFAULT_LOCK_TTL: Final = 600.0

# Upstream: verify the server certificate by default (curl, Go, Python's ssl); nginx's
# proxy_ssl_verify off and Envoy's unset validation context are what the issue calls unsafe.
DEFAULT_VERIFY: Final = True
DEFAULT_UPSTREAM_ALPN: Final[tuple[Alpn, ...]] = ("http/1.1",)


@dataclass(frozen=True, kw_only=True)
class CertificateConfig:
    """One certificate with its key: files (reloaded when they change) or inline PEM."""

    cert: str | None = field(
        default=None,
        metadata=doc("PEM file: the certificate first, then its intermediates in order"),
    )
    key: str | None = field(default=None, metadata=doc("PEM file of the unencrypted private key"))
    cert_pem: str | None = field(
        default=None, metadata=doc("inline PEM instead of `cert` (not reloaded)")
    )
    key_pem: str | None = field(
        default=None, metadata=doc("inline PEM instead of `key` (not reloaded)")
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if (self.cert is None) == (self.cert_pem is None):
            problems.append(("cert", "set exactly one of cert (a file) or cert_pem (inline)"))
        if (self.key is None) == (self.key_pem is None):
            problems.append(("key", "set exactly one of key (a file) or key_pem (inline)"))
        return problems


@dataclass(frozen=True, kw_only=True)
class AcmeConfig:
    """Certificates obtained and renewed from an ACME CA (RFC 8555)."""

    directory: str = field(
        default=LETS_ENCRYPT_DIRECTORY,
        metadata=doc("ACME directory URL; Let's Encrypt production as Caddy and Traefik"),
    )
    email: str | None = field(
        default=None, metadata=doc("account contact for expiry notices from the CA")
    )
    domains: list[str] = field(
        default_factory=list, metadata=doc("names to obtain one certificate for (required)")
    )
    challenges: list[Challenge] = field(
        default_factory=lambda: list(DEFAULT_CHALLENGES),
        metadata=doc("challenge types in order of preference: http-01, tls-alpn-01"),
    )
    storage: str = field(
        default=DEFAULT_ACME_STORAGE,
        metadata=doc("directory for the account key and certificates (files 0600)"),
    )
    ca_bundle: str | None = field(
        default=None,
        metadata=doc("PEM CA file trusted for the directory's HTTPS; default: the system's"),
    )
    key_type: AcmeKeyType = field(
        default=DEFAULT_ACME_KEY_TYPE, metadata=doc("certificate key: ecdsa-p256 or rsa-2048")
    )
    renew_at: float = field(
        default=DEFAULT_RENEW_AT,
        metadata=doc("fraction of the lifetime after which to renew (2/3, as certbot)"),
    )
    retry_base: Duration = field(
        default=DEFAULT_RETRY_BASE, metadata=doc("wait after a first failure; doubles each time")
    )
    retry_max: Duration = field(
        default=DEFAULT_RETRY_MAX, metadata=doc("longest wait between two failed attempts")
    )
    lock: LockKind = field(
        default=DEFAULT_LOCK,
        metadata=doc("file (one host) or redis (top-level redis:) so one gateway orders a name"),
    )
    lock_ttl: Duration = field(
        default=DEFAULT_LOCK_TTL, metadata=doc("the order lock expires this long after taking")
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.directory.startswith("https://"):
            problems.append(("directory", f"must be an https:// URL, got {self.directory!r}"))
        if not self.domains:
            problems.append(("domains", "list at least one name"))
        for i, name in enumerate(self.domains):
            reason = _domain_problem(name)
            if reason:
                problems.append((f"domains[{i}]", reason))
        if not self.challenges:
            problems.append(("challenges", "list at least one of http-01, tls-alpn-01"))
        if not 0.0 < self.renew_at < 1.0:
            problems.append(("renew_at", f"must be between 0 and 1, got {self.renew_at}"))
        if self.retry_base <= 0:
            problems.append(("retry_base", f"must be > 0, got {self.retry_base}"))
        if self.retry_max < self.retry_base:
            problems.append(("retry_max", "must be at least retry_base"))
        if self.lock_ttl <= 0:
            problems.append(("lock_ttl", f"must be > 0, got {self.lock_ttl}"))
        if self.email is not None and "@" not in self.email:
            problems.append(("email", f"not an email address: {self.email!r}"))
        return problems


def _domain_problem(name: str) -> str:
    """Why `name` cannot be ordered, or "" when it can."""
    if name != name.strip().lower() or not name:
        return f"must be a lower-case DNS name without spaces, got {name!r}"
    if name.startswith("*."):
        return "wildcards need the DNS-01 challenge, which edgeward does not do"
    labels = name.rstrip(".").split(".")
    if any(not label or len(label) > 63 for label in labels) or "*" in name:
        return f"not a valid DNS name: {name!r}"
    return ""


@dataclass(frozen=True, kw_only=True)
class TlsListenerConfig:
    """`tls:` of a listener: certificates chosen by SNI, versions, ciphers, mTLS, ACME."""

    certificates: list[CertificateConfig] = field(
        default_factory=list,
        metadata=doc("certificate/key pairs chosen by SNI; the first is the default"),
    )
    min_version: TlsVersion = field(
        default=DEFAULT_MIN_VERSION, metadata=doc("oldest TLS version: 1.2 or 1.3 (Mozilla)")
    )
    ciphers: str = field(
        default=DEFAULT_CIPHERS,
        metadata=doc("OpenSSL cipher list for TLS 1.2; Mozilla intermediate"),
    )
    alpn: list[Alpn] = field(
        default_factory=lambda: list(DEFAULT_ALPN),
        metadata=doc("protocols offered by ALPN, in order: h2 (unless server.http2 is off) "
                     "and http/1.1"),
    )
    client_ca: str | None = field(
        default=None, metadata=doc("PEM file of the CAs that sign client certificates (mTLS)")
    )
    client_auth: ClientAuth = field(
        default=DEFAULT_CLIENT_AUTH,
        metadata=doc("none | optional | required: whether clients must show a certificate"),
    )
    acme: AcmeConfig | None = field(
        default=None, metadata=doc("obtain certificates from an ACME CA; off by default")
    )
    session_tickets: bool = field(
        default=DEFAULT_SESSION_TICKETS, metadata=doc("resume sessions with TLS tickets")
    )
    session_ticket_key_file: str | None = field(
        default=None,
        metadata=doc("file with a secret (32+ bytes) shared by hosts for ticket keys"),
    )
    session_ticket_rotation: Duration = field(
        default=DEFAULT_TICKET_ROTATION, metadata=doc("ticket key lifetime (Caddy: 12h)")
    )
    watch_interval: Duration = field(
        default=DEFAULT_WATCH_INTERVAL, metadata=doc("how often certificate files are checked")
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.certificates and self.acme is None:
            problems.append(("certificates", "list at least one certificate, or set acme"))
        if not self.ciphers.strip():
            problems.append(("ciphers", "must not be empty"))
        problems.extend(_alpn_problems(self.alpn, LISTENER_ALPN))
        if self.client_auth != "none" and self.client_ca is None:
            problems.append(("client_ca", f"required with client_auth: {self.client_auth}"))
        if self.client_ca is not None and self.client_auth == "none":
            problems.append(("client_auth", "client_ca is set but client_auth is none; "
                                            "set optional or required"))
        if self.session_ticket_rotation < 60:
            problems.append(("session_ticket_rotation",
                             f"must be at least 1m, got {self.session_ticket_rotation}s"))
        if self.watch_interval <= 0:
            problems.append(("watch_interval", f"must be > 0, got {self.watch_interval}"))
        return problems


def _alpn_problems(alpn: list[Alpn], served: frozenset[str]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not alpn:
        problems.append(("alpn", "list at least one protocol"))
    if len(set(alpn)) != len(alpn):
        problems.append(("alpn", "lists a protocol twice"))
    for i, proto in enumerate(alpn):
        if proto not in served:
            problems.append((f"alpn[{i}]", f"{proto} is not served yet (only "
                                           f"{', '.join(sorted(served))})"))
    return problems


@dataclass(frozen=True, kw_only=True)
class UpstreamTlsConfig:
    """`tls:` of an upstream: how the gateway connects to its endpoints over TLS."""

    ca: str | None = field(
        default=None, metadata=doc("PEM file of trusted CAs; default: the system trust store")
    )
    server_name: str | None = field(
        default=None,
        metadata=doc("SNI and the name verified; default: the target's host (nginx)"),
    )
    client_cert: str | None = field(
        default=None, metadata=doc("PEM certificate shown to the upstream (mTLS)")
    )
    client_key: str | None = field(default=None, metadata=doc("PEM key of client_cert"))
    verify: bool = field(
        default=DEFAULT_VERIFY,
        metadata=doc("verify the upstream's certificate and name; false only for tests"),
    )
    min_version: TlsVersion = field(
        default=DEFAULT_MIN_VERSION, metadata=doc("oldest TLS version: 1.2 or 1.3")
    )
    alpn: list[Alpn] = field(
        default_factory=lambda: list(DEFAULT_UPSTREAM_ALPN),
        metadata=doc("protocols offered to the upstream; http/1.1"),
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if (self.client_cert is None) != (self.client_key is None):
            problems.append(("client_key" if self.client_key is None else "client_cert",
                             "client_cert and client_key go together"))
        if not self.verify and self.ca is not None:
            problems.append(("verify", "ca is set but verify is false; the ca would be unused"))
        if self.server_name is not None and not self.server_name.strip():
            problems.append(("server_name", "must not be empty"))
        problems.extend(_alpn_problems(self.alpn, SERVED_ALPN))
        return problems
