"""Config of `subset` (docs/locality.md): label subsets chosen from a request attribute.

    subset:
      key: header:x-device-type           # any per-request key: header:N, cookie:N, query:N,
                                          # consumer, client_ip, path
      map: {sensor: {class: iot}, phone: {class: mobile}}
      default: {class: general}           # the subset for fallback: default
      fallback: any                       # any | default | none (Envoy's fallback_policy)

A value found in `map` goes to its subset; when that subset has no available endpoint, or the
value maps to none, `fallback` decides: `any` endpoint of the upstream, the `default` subset
(503 no_subset_endpoint when it has no available endpoint either), or `none`: 503 no_subset
for an unmapped value, 503 no_subset_endpoint for an empty subset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from edgeward.balance.locality import selector_of
from edgeward.filters.config import BuildContext, register
from edgeward.filters.subset import Chain, Subset
from edgeward.routing.keys import parse_key
from edgeward.values import doc

# Envoy subset_lb_config.fallback_policy defaults to NO_FALLBACK; a gateway that sends a
# request to the wrong class of device on a typo is worse than an honest 503, so none here too.
DEFAULT_FALLBACK: Final = "none"


@dataclass(frozen=True, kw_only=True)
class SubsetConfig:
    key: str = field(
        metadata=doc("request attribute whose value picks the subset: header:N, cookie:N, "
                     "query:N, consumer, client_ip, path"))
    map: dict[str, dict[str, str]] = field(
        metadata=doc("attribute value -> labels an endpoint must all carry"))
    default: dict[str, str] | None = field(
        default=None, metadata=doc("labels of the subset used by fallback: default"))
    fallback: Literal["any", "default", "none"] = field(
        default=DEFAULT_FALLBACK,
        metadata=doc("when the value maps to no subset or its subset has no available "
                     "endpoint: any endpoint, the default subset, or none (503 no_subset / "
                     "no_subset_endpoint); none as Envoy's NO_FALLBACK"))

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        try:
            spec = parse_key(self.key)
        except ValueError as exc:
            problems.append(("key", str(exc)))
        else:
            if spec.kind == "route":
                problems.append(("key", "route is not a per-request attribute"))
        if not self.map:
            problems.append(("map", "give at least one value -> labels entry"))
        for value, labels in self.map.items():
            if not labels:
                problems.append((f"map.{value}", "labels must not be empty"))
        if self.fallback == "default" and not self.default:
            problems.append(("default", "fallback default needs default labels"))
        return problems


def _make(config: SubsetConfig, ctx: BuildContext) -> Subset:
    tail: Chain = {"any": (None,), "none": (),
                   "default": (selector_of(config.default or {}),)}[config.fallback]
    chains = {value: (selector_of(labels),) + tail for value, labels in config.map.items()}
    unmatched = tail if tail else None
    return Subset(parse_key(config.key), chains, unmatched)


register("subset", SubsetConfig, _make)
