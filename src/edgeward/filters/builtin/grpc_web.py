"""`grpc_web` in a route's filters: gRPC-Web calls translated to gRPC (edgeward.grpc.web)."""

from __future__ import annotations

from dataclasses import dataclass

from edgeward.filters.api import Filter
from edgeward.filters.config import BuildContext, register


@dataclass(frozen=True, kw_only=True)
class GrpcWebConfig:
    """`grpc_web: {}` (or `grpc_web: true`): no settings; Envoy's grpc_web filter has none
    either."""


def _make(config: GrpcWebConfig, ctx: BuildContext) -> Filter:
    from edgeward.grpc.web import GrpcWeb  # here: edgeward.grpc.web imports the filter API

    return GrpcWeb()


def _shorthand(raw: object) -> object:
    return {} if raw is None or raw is True else raw


register("grpc_web", GrpcWebConfig, _make, shorthand=_shorthand)
