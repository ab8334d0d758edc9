"""Config of `fault` (docs/filters.md, "Fault injection").

    fault: {abort: {status: 503, percent: 5}, delay: {duration: 200ms, percent: 5},
            when: {header: {x-chaos: "1"}}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from edgeward.filters.config import BuildContext, register
from edgeward.filters.fault import Fault
from edgeward.routing.config import WhenConfig
from edgeward.routing.keys import parse_key
from edgeward.routing.split import Condition
from edgeward.values import Duration, doc

# A fault that is configured applies to every request its `when` admits unless a percent is
# given: a drill is switched on by listing the filter (or by its `when` header), and Envoy's
# header-controlled faults likewise apply fully once the header is there.
DEFAULT_PERCENT: Final = 100.0
# Envoy's fault abort example status; what an unavailable upstream answers.
DEFAULT_ABORT_STATUS: Final = 503


def _percent_problem(value: float) -> str | None:
    return None if 0.0 <= value <= 100.0 else f"must be between 0 and 100, got {value}"


@dataclass(frozen=True, kw_only=True)
class AbortConfig:
    status: int = field(default=DEFAULT_ABORT_STATUS, metadata=doc("status answered, 200-599"))
    percent: float = field(default=DEFAULT_PERCENT, metadata=doc("share of requests, 0-100"))

    def check(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if not 200 <= self.status <= 599:
            out.append(("status", f"must be 200-599, got {self.status}"))
        if reason := _percent_problem(self.percent):
            out.append(("percent", reason))
        return out


@dataclass(frozen=True, kw_only=True)
class DelayConfig:
    duration: Duration = field(metadata=doc("how long a request is held"))
    percent: float = field(default=DEFAULT_PERCENT, metadata=doc("share of requests, 0-100"))

    def check(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.duration <= 0:
            out.append(("duration", "must be above 0"))
        if reason := _percent_problem(self.percent):
            out.append(("percent", reason))
        return out


@dataclass(frozen=True, kw_only=True)
class FaultConfig:
    abort: AbortConfig | None = field(default=None, metadata=doc("answer instead of the upstream"))
    delay: DelayConfig | None = field(default=None, metadata=doc("hold before going on"))
    when: WhenConfig | None = field(
        default=None,
        metadata=doc("only requests matching it (header/cookie/percent_of, as a split's "
                     "when); null: every request"))

    def check(self) -> list[tuple[str, str]]:
        if self.abort is None and self.delay is None:
            return [("", "give abort, delay or both")]
        return []


def _make(config: FaultConfig, ctx: BuildContext) -> Fault:
    when = None
    w = config.when
    if w is not None:
        p = w.percent_of
        when = Condition(headers=w.header, cookies=w.cookie,
                         key=parse_key(p.key) if p else None, percent=p.percent if p else None)
    return Fault(
        abort_status=config.abort.status if config.abort else None,
        abort_percent=config.abort.percent if config.abort else 0.0,
        delay=config.delay.duration if config.delay else None,
        delay_percent=config.delay.percent if config.delay else 0.0,
        when=when, rng=ctx.rng, events=ctx.events)


register("fault", FaultConfig, _make)
