"""The authentication filter kinds: `auth` (several methods, first success wins) and one kind
per method (`jwt`, `api_key`, `basic_auth`, `forward_auth`, `client_cert`) for a route that
takes only one: `- jwt: {...}` is `- auth: {methods: [{jwt: {...}}]}` with the `auth` defaults.
"""

from __future__ import annotations

from typing import Any

from edgeward.auth.basic import BasicMethod
from edgeward.auth.clientcert import ClientCertMethod
from edgeward.auth.config import (
    DEFAULT_CONSUMER_HEADER,
    DEFAULT_REALM,
    ApiKeyConfig,
    AuthConfig,
    BasicConfig,
    ClientCertConfig,
    ForwardConfig,
    JwtConfig,
    read_methods,
)
from edgeward.auth.context import AuthContext
from edgeward.auth.filter import AuthFilter
from edgeward.auth.forward import ForwardMethod
from edgeward.auth.jwt import JwtMethod
from edgeward.auth.keyauth import ApiKeyMethod
from edgeward.auth.method import Method
from edgeward.filters.config import BuildContext, register


def make_method(kind: str, cfg: Any, ctx: AuthContext, realm: str) -> Method:
    if kind == "jwt":
        if cfg.jwks is not None and cfg.jwks.upstream is not None and (
                cfg.jwks.upstream not in ctx.upstreams):
            raise ValueError(f"jwt.jwks.upstream: no upstream named {cfg.jwks.upstream!r}")
        method = JwtMethod(cfg, ctx, realm)
        method.start()
        return method
    if kind == "api_key":
        return ApiKeyMethod(cfg, ctx, realm)
    if kind == "basic":
        return BasicMethod(cfg, ctx, realm)
    if kind == "client_cert":
        return ClientCertMethod(cfg, ctx, realm)
    return ForwardMethod(cfg, ctx)


def make_auth(cfg: AuthConfig, build: BuildContext) -> AuthFilter:
    methods = [make_method(kind, mcfg, build.auth, cfg.realm)
               for kind, mcfg in cfg.parsed_methods()]
    return AuthFilter(cfg, methods)


def upstreams_of(kind: str, cfg: Any) -> list[tuple[str, str]]:
    """(key path inside the entry, upstream name) of each upstream a method names."""
    if kind == "jwt" and cfg.jwks is not None and cfg.jwks.upstream is not None:
        return [("jwks.upstream", cfg.jwks.upstream)]
    if kind == "forward":
        return [("upstream", cfg.upstream)]
    return []


def auth_upstreams(cfg: AuthConfig) -> list[tuple[str, str]]:
    found = read_methods(cfg.methods, "methods", [])
    out: list[tuple[str, str]] = []
    for i, (kind, mcfg) in enumerate(found):
        out.extend((f"methods[{i}].{kind}.{k}", name) for k, name in upstreams_of(kind, mcfg))
    return out


def _single(kind: str) -> Any:
    def make(cfg: Any, build: BuildContext) -> AuthFilter:
        auth = AuthConfig(methods=[], consumer_header=DEFAULT_CONSUMER_HEADER,
                          realm=DEFAULT_REALM)
        filt = AuthFilter(auth, [make_method(kind, cfg, build.auth, DEFAULT_REALM)])
        filt.name = kind
        return filt

    return make


register("auth", AuthConfig, make_auth, upstreams=auth_upstreams)
register("jwt", JwtConfig, _single("jwt"),
         upstreams=lambda c: upstreams_of("jwt", c))
register("api_key", ApiKeyConfig, _single("api_key"))
register("basic_auth", BasicConfig, _single("basic"))
register("client_cert", ClientCertConfig, _single("client_cert"))
register("forward_auth", ForwardConfig, _single("forward"),
         upstreams=lambda c: upstreams_of("forward", c))
