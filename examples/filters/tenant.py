"""Tenant: tags each request with its tenant and refuses unknown ones (a synchronous filter).

The tenant is the first label of the host (`acme.api.example` -> `acme`). Requests for a tenant
the config does not list get 403 with code `unknown_tenant`; the others go upstream with an
`x-tenant` field (whatever the client sent under that name is replaced), and the response
carries it back.

    filters:
      tenant:
        python: "tenant:Tenant"
        config: {tenants: [acme, globex]}
    routes:
      - {match: {path_prefix: /}, upstream: app, filters: [tenant]}

It never waits, so it costs a plain call per request: no task, no future.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeward.filters import Filter, Reply, Request, Response


@dataclass(frozen=True, kw_only=True)
class TenantConfig:
    tenants: list[str] = field(default_factory=list)
    header: str = "x-tenant"

    def check(self) -> list[tuple[str, str]]:
        """Cross-field rules, reported with key paths like every config section."""
        if not self.tenants:
            return [("tenants", "list at least one tenant")]
        return [(f"tenants[{i}]", "must be lower case")
                for i, t in enumerate(self.tenants) if t != t.lower()]


class Tenant(Filter):
    def __init__(self, config: TenantConfig) -> None:
        self.known = frozenset(config.tenants)
        self.header = config.header

    def on_request(self, req: Request) -> Reply | None:
        tenant = req.host.partition(".")[0]
        if tenant not in self.known:
            return Reply.error(403, "unknown_tenant", f"no tenant {tenant!r} here")
        req.headers.set(self.header, tenant)
        req.vars["tenant"] = tenant
        return None

    def on_response(self, req: Request, resp: Response) -> None:
        resp.headers.set(self.header, str(req.vars["tenant"]))
