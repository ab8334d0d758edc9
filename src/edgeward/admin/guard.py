"""Refuse admin requests that a web page in an operator's browser could make on its own.

The admin API listens on loopback without a token by default, so the browser of anyone on the
host is a client of it. Three attacks are closed here, from the request head alone (method and
lower-case header names), before any body is read or any handler runs:

- DNS rebinding: a page at `http://rebind.evil.example:9901` whose name is re-pointed at
  127.0.0.1 sends its requests, same-origin in the browser's eyes, with that name in `Host`.
  Only Host values naming this listener are served: `localhost`, a loopback IP, the configured
  listen address, a name listed in `admin.hosts`, or, when the listener is bound to the
  wildcard address, any IP literal (a page can only reach an IP-literal origin by being served
  from it). Caddy's admin endpoint checks Host the same way (`admin.origins`). A request
  without Host (HTTP/1.0 tools) is accepted: a browser always sends it.
- Cross-site requests (CSRF): a state-changing request is refused when it carries
  `Origin: null` (sandboxed frames, `data:` pages), an Origin that is not this Host, or
  `Sec-Fetch-Site: cross-site`.
- Requests a form can send without a preflight: a state-changing request needs a Content-Type
  other than the three CORS-safelisted ones (`application/x-www-form-urlencoded`,
  `multipart/form-data`, `text/plain`), for instance `application/yaml` or
  `application/json`, or the header `X-Requested-With`. Either makes a browser ask first with
  an OPTIONS preflight, and every preflight is refused (the admin API serves no cross-origin
  caller), so the request is never sent.

`check_request` is a pure function of the head, so the HTTP layer can call it as soon as the
head is parsed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Final

# Methods that change nothing: a cross-site page cannot read their answers (same-origin
# policy), and a link followed from another site (Sec-Fetch-Site: cross-site) must still open
# the dashboard.
SAFE_METHODS: Final = frozenset({"GET", "HEAD"})
# Fetch standard, "CORS-safelisted request-header": the Content-Types a cross-site form or
# `fetch(..., {mode: "no-cors"})` can send without a preflight.
SIMPLE_CONTENT_TYPES: Final = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
# A header no form can add; scripts that cannot set a Content-Type may send it instead (the
# convention of jQuery, Angular and Rails for "not a plain form post").
CUSTOM_HEADER: Final = "x-requested-with"

Refusal = tuple[int, str, str]


def host_name(value: str) -> str:
    """The host part of a Host header value, lower-case, without port or IPv6 brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    name, colon, port = value.rpartition(":")
    return name if colon and port.isdigit() else value


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def host_allowed(value: str, listen_host: str, hosts: Iterable[str] = ()) -> bool:
    """Whether a Host header value names the admin listener bound to `listen_host`."""
    name = host_name(value)
    if name == "localhost" or name == listen_host.lower() or name in {h.lower() for h in hosts}:
        return True
    ip = _ip(name)
    if ip is None:
        return False
    if ip.is_loopback:
        return True
    listen_ip = _ip(listen_host)
    return listen_ip is not None and listen_ip.is_unspecified


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def check_request(
    method: str,
    headers: Mapping[str, str],
    listen_host: str,
    hosts: Iterable[str] = (),
) -> Refusal | None:
    """None when the request may proceed, else (status, code, message) to answer with.

    `headers` has lower-case names; `listen_host` is the admin listener's configured host;
    `hosts` are the extra names of `admin.hosts`."""
    host = headers.get("host")
    if host is not None and not host_allowed(host, listen_host, hosts):
        return (403, "forbidden_host",
                f"Host {host_name(host)!r} does not name this admin listener; use localhost, "
                "a loopback address or the configured address, or list the name in admin.hosts")
    if method == "OPTIONS":
        return (403, "forbidden_origin",
                "the admin API answers no CORS preflight: it serves no cross-origin caller")
    if method in SAFE_METHODS:
        return None
    origin = headers.get("origin")
    if origin is not None and (host is None or origin not in (f"http://{host}",
                                                              f"https://{host}")):
        return (403, "forbidden_origin", f"a page from {origin} may not change this gateway")
    if headers.get("sec-fetch-site") == "cross-site":
        return (403, "forbidden_origin", "a cross-site page may not change this gateway")
    media = _media_type(headers.get("content-type", ""))
    if (not media or media in SIMPLE_CONTENT_TYPES) and CUSTOM_HEADER not in headers:
        shown = media or "none"
        return (415, "unsupported_media_type",
                f"{method} needs a Content-Type such as application/yaml or application/json "
                f"(got {shown}), or an X-Requested-With header: a web form can send neither")
    return None
