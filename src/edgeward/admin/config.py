"""Admin listener settings: the `admin:` section of the gateway config."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from edgeward.values import Address, Duration, Size, doc

# Envoy's documented admin port, bound to loopback: the admin API can reconfigure the gateway,
# so it is never reachable from the network unless someone chooses that (and sets a token).
DEFAULT_LISTEN = ("127.0.0.1", 9901)
# 1 MiB: a config file or a command fits many times over; nginx's client_max_body_size is the
# same 1m by default.
DEFAULT_MAX_BODY = 1024 * 1024
# 16 KiB of request line + headers: Node's llhttp default --max-http-header-size; nginx's
# large_client_header_buffers is 4 x 8k.
DEFAULT_MAX_HEAD = 16 * 1024
# nginx keepalive_timeout 75s: a dashboard polling every 2 s keeps its connection open.
DEFAULT_IDLE_TIMEOUT = 75.0
# Connections open at once on the admin listener: a few dashboards and scrapers need a
# handful; 64 bounds what a flood of connections can hold (memory, descriptors).
DEFAULT_MAX_CONNECTIONS = 64
# Dashboard resolution and window, see admin/series.py.
DEFAULT_SERIES_STEP = 5.0
DEFAULT_SERIES_HORIZON = 900.0
MAX_SERIES_SLOTS = 10_000


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class AdminConfig:
    listen: Address = field(
        default=DEFAULT_LISTEN,
        metadata=doc("HOST:PORT of the admin API; loopback by default (Envoy admin: 9901)"),
    )
    token: str | None = field(
        default=None,
        metadata=doc("Bearer token required by every POST; prefer token_env to keep it out of "
                     "the file"),
    )
    hosts: list[str] = field(
        default_factory=list,
        metadata=doc("extra Host names the admin API answers to, besides localhost, loopback "
                     "addresses and the listen address (DNS-rebinding defence, as Caddy's "
                     "admin origins)"),
    )
    token_env: str | None = field(
        default=None,
        metadata=doc("name of an environment variable holding the bearer token"),
    )
    max_body: Size = field(
        default=DEFAULT_MAX_BODY, metadata=doc("largest request body accepted (nginx: 1m)")
    )
    max_head: Size = field(
        default=DEFAULT_MAX_HEAD, metadata=doc("largest request line + headers (llhttp: 16KiB)")
    )
    idle_timeout: Duration = field(
        default=DEFAULT_IDLE_TIMEOUT,
        metadata=doc("close a keep-alive connection idle this long (nginx keepalive_timeout)"),
    )
    max_connections: int = field(
        default=DEFAULT_MAX_CONNECTIONS,
        metadata=doc("connections open at once; more are closed as they arrive"),
    )
    series_step: Duration = field(
        default=DEFAULT_SERIES_STEP, metadata=doc("dashboard sampling step")
    )
    series_horizon: Duration = field(
        default=DEFAULT_SERIES_HORIZON, metadata=doc("dashboard window")
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.token is not None and self.token_env is not None:
            problems.append(("token", "set token or token_env, not both"))
        if self.token is not None and not self.token:
            problems.append(("token", "must not be empty"))
        host = self.listen[0]
        if not _is_loopback(host) and self.token is None and self.token_env is None:
            problems.append(
                ("listen", f"{host} is not a loopback address: set token or token_env so "
                           "the admin API cannot be changed by anyone who can reach it")
            )
        if self.max_body < 1:
            problems.append(("max_body", f"must be at least 1 byte, got {self.max_body}"))
        if self.max_head < 1024:
            problems.append(("max_head", f"must be at least 1KiB, got {self.max_head}"))
        if self.max_connections < 1:
            problems.append(("max_connections", f"must be at least 1, got {self.max_connections}"))
        if self.idle_timeout <= 0:
            problems.append(("idle_timeout", f"must be > 0, got {self.idle_timeout}s"))
        if self.series_step <= 0:
            problems.append(("series_step", f"must be > 0, got {self.series_step}s"))
        elif self.series_horizon < self.series_step:
            problems.append(("series_horizon",
                             f"must be >= series_step ({self.series_step}s), "
                             f"got {self.series_horizon}s"))
        elif self.series_horizon / self.series_step > MAX_SERIES_SLOTS:
            problems.append(("series_horizon",
                             f"series_horizon/series_step must be <= {MAX_SERIES_SLOTS}, got "
                             f"{self.series_horizon}s/{self.series_step}s"))
        return problems

    def resolve_token(self, environ: Mapping[str, str]) -> str | None:
        """The bearer token to enforce; raises ValueError if token_env names an unset variable."""
        if self.token_env is None:
            return self.token
        value = environ.get(self.token_env)
        if not value:
            raise ValueError(f"admin.token_env: environment variable {self.token_env} is not set")
        return value
