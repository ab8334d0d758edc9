"""`listeners:` entries (addresses, TLS, the HTTP->HTTPS redirect, HSTS) and `https://` targets.

    listen: 0.0.0.0:80                          # a plain listener (the shorthand)
    listeners:
      - address: 0.0.0.0:443
        tls: {certificates: [{cert: /etc/edgeward/site.pem, key: /etc/edgeward/site.key}]}
        hsts: max-age=31536000
      - {address: 0.0.0.0:8080, https_redirect: true}

The listeners served are `listen` (when given) followed by `listeners`; with neither, one
plain listener on DEFAULT_LISTEN. The `tls:` keys are the TLS package's (tls/config.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from edgeward.tls.config import TlsListenerConfig
from edgeward.values import Address, doc

# The address served when the config names none (the demo's and the examples' port).
DEFAULT_LISTEN: Final = ("0.0.0.0", 8080)
# RFC 6797 requires max-age; this is what `hsts: true` would mean in nginx/Caddy snippets
# (one year), written out so the config says what is sent.
HSTS_PREFIX: Final = "max-age="


@dataclass(frozen=True, kw_only=True)
class ListenerConfig:
    """One address the gateway accepts client connections on."""

    address: Address = field(metadata=doc("HOST:PORT to listen on"))
    tls: TlsListenerConfig | None = field(
        default=None, metadata=doc("terminate TLS here (docs/tls.md); null: plain HTTP"))
    https_redirect: bool = field(
        default=False,
        metadata=doc("answer every request with 308 to the same URL on https (ACME HTTP-01 "
                     "challenges excepted); plain listeners only"))
    https_port: int | None = field(
        default=None,
        metadata=doc("port in the https_redirect Location; null: none (443, the default)"))
    hsts: str | None = field(
        default=None,
        metadata=doc("Strict-Transport-Security value added to every response, e.g. "
                     "max-age=31536000; includeSubDomains; TLS listeners only"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.https_redirect and self.tls is not None:
            problems.append(("https_redirect", "this listener already serves https; set it "
                                               "on the plain listener"))
        if self.https_port is not None:
            if not self.https_redirect:
                problems.append(("https_port", "only used with https_redirect: true"))
            if not 0 < self.https_port < 65536:
                problems.append(("https_port", f"must be 1-65535, got {self.https_port}"))
        if self.hsts is not None:
            if self.tls is None:
                problems.append(("hsts", "browsers ignore Strict-Transport-Security over "
                                         "plain HTTP (RFC 6797 8.1); set it on a TLS listener"))
            problems.extend(("hsts", reason) for reason in _hsts_problems(self.hsts))
        return problems


def _hsts_problems(value: str) -> list[str]:
    first = value.split(";", 1)[0].strip().lower()
    if not first.startswith(HSTS_PREFIX) or not first[len(HSTS_PREFIX):].isdigit():
        return [f"must start with max-age=SECONDS (RFC 6797 6.1), got {value!r}"]
    if any(c in value for c in "\r\n\0"):
        return ["must not contain CR, LF or NUL"]
    return []


def served_listeners(listen: tuple[str, int] | None,
                     listeners: list[ListenerConfig]) -> list[tuple[str, ListenerConfig]]:
    """(key path, listener) of every listener served, in order."""
    out: list[tuple[str, ListenerConfig]] = []
    if listen is not None or not listeners:
        out.append(("listen", ListenerConfig(address=listen or DEFAULT_LISTEN)))
    out.extend((f"listeners[{i}]", lc) for i, lc in enumerate(listeners))
    return out


def address_problems(served: list[tuple[str, ListenerConfig]]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, int], str] = {}
    problems: list[tuple[str, str]] = []
    for path, lc in served:
        if lc.address in seen:
            problems.append((f"{path}.address" if path != "listen" else path,
                             f"{lc.address[0]}:{lc.address[1]} is also {seen[lc.address]}"))
        seen.setdefault(lc.address, path)
    return problems


# --- `https://` targets ----------------------------------------------------------------------
HTTPS: Final = "https://"
HTTP: Final = "http://"


def normalize_targets(upstream: Any) -> Any:
    """`targets: [https://a:8443, https://b]` -> `[a:8443, b:443]` and `tls: {}` unless the
    upstream has its own `tls:`; `http://` is dropped. A list mixing both is left alone so the
    address reader refuses it (values.parse_address names the reason)."""
    if not isinstance(upstream, dict) or not isinstance(upstream.get("targets"), list):
        return upstream
    targets = upstream["targets"]
    schemes = {_scheme(t) for t in targets}
    if schemes == {None} or len(schemes) > 1:
        return upstream
    out = dict(upstream)
    out["targets"] = [_strip(t) for t in targets]
    if HTTPS in schemes and out.get("tls") is None:
        out["tls"] = {}
    return out


def _scheme(target: object) -> str | None:
    if isinstance(target, str):
        for scheme in (HTTPS, HTTP):
            if target.lower().startswith(scheme):
                return scheme
    return None


def _strip(target: object) -> object:
    assert isinstance(target, str)
    scheme = _scheme(target)
    assert scheme is not None
    rest = target[len(scheme):].rstrip("/")
    has_port = rest.rpartition(":")[2].isdigit() and (not rest.startswith("[")
                                                      or "]:" in rest)
    return rest if has_port else f"{rest}:{443 if scheme == HTTPS else 80}"
