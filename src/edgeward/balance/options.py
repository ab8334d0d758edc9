"""BalancerOptions: the balancing keys of an upstream mapping (`balance`, `ring_size`, ...).

The keys live directly on the upstream in YAML (`upstreams.orders.balance: ring_hash`); the
config compiler reads them into this frozen dataclass and hands it to `make_balancer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edgeward.values import Duration, doc

BalanceKind = Literal[
    "round_robin", "weighted", "least_request", "ring_hash", "maglev", "peak_ewma"
]

# Round robin is the default policy of both nginx (`upstream` without a method) and Envoy
# (`lb_policy: ROUND_ROBIN`).
DEFAULT_BALANCE: BalanceKind = "round_robin"
# Bounded load is off unless asked for, as in Envoy (`hash_balance_factor` unset).
DEFAULT_HASH_BALANCE_FACTOR: float | None = None
# Envoy least_request `active_request_bias` default: effective weight = weight / (active+1)^1.
DEFAULT_ACTIVE_REQUEST_BIAS = 1.0
# Envoy `healthy_panic_threshold` default of 50 %: below half the capacity available, spread
# over every endpoint rather than overload the few that are left.
DEFAULT_PANIC_THRESHOLD = 0.5
# Finagle `p2cPeakEwma(decayTime = 10.seconds)` and Envoy peak_ewma `decay_time` default: 10 s.
DEFAULT_EWMA_DECAY = 10.0
# Envoy ring_hash `minimum_ring_size` default: 1024 entries over the whole ring.
DEFAULT_RING_SIZE = 1024
# Largest `ring_size`. Envoy's `maximum_ring_size` default is 8M entries, for C++ rings of
# 16 bytes an entry; a CPython ring entry costs ~100 bytes and ~1 us to build, so ours is 1Mi.
# The ring built is at most RESCALE_ABOVE (4) x ring_size points plus one per endpoint,
# whatever the weights (ring_hash.py): 4Mi points at this cap, 4,096 + N by default.
MAX_RING_SIZE = 1024 * 1024

HASHED_KINDS: frozenset[str] = frozenset({"ring_hash", "maglev"})


@dataclass(frozen=True, kw_only=True)
class BalancerOptions:
    """How one upstream spreads requests over its endpoints."""

    balance: BalanceKind = field(
        default=DEFAULT_BALANCE,
        metadata=doc("round_robin (nginx/Envoy default) | weighted | least_request | "
                     "ring_hash | maglev | peak_ewma"),
    )
    hash_balance_factor: float | None = field(
        default=DEFAULT_HASH_BALANCE_FACTOR,
        metadata=doc("ring_hash/maglev bounded load: no endpoint takes more than "
                     "ceil(factor * average in-flight); off by default as in Envoy"),
    )
    active_request_bias: float = field(
        default=DEFAULT_ACTIVE_REQUEST_BIAS,
        metadata=doc("least_request with unequal weights: weight/(active+1)^bias (Envoy 1.0)"),
    )
    panic_threshold: float = field(
        default=DEFAULT_PANIC_THRESHOLD,
        metadata=doc("below this available fraction of total weight, use every endpoint "
                     "(Envoy healthy_panic_threshold 50%); 0 disables panic"),
    )
    ewma_decay: Duration = field(
        default=DEFAULT_EWMA_DECAY,
        metadata=doc("peak_ewma: time over which latency history decays (Finagle 10s)"),
    )
    ring_size: int = field(
        default=DEFAULT_RING_SIZE,
        metadata=doc("ring_hash: target number of ring entries (Envoy minimum_ring_size 1024)"),
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        factor = self.hash_balance_factor
        if factor is not None:
            if not factor > 1.0:
                problems.append(("hash_balance_factor", f"must be > 1.0, got {factor!r}"))
            elif self.balance not in HASHED_KINDS:
                problems.append((
                    "hash_balance_factor",
                    f"only applies to balance ring_hash or maglev, got balance {self.balance!r}",
                ))
        if not self.active_request_bias >= 0.0:
            problems.append(
                ("active_request_bias", f"must be >= 0, got {self.active_request_bias!r}")
            )
        if not 0.0 <= self.panic_threshold <= 1.0:
            problems.append(
                ("panic_threshold", f"must be between 0 and 1, got {self.panic_threshold!r}")
            )
        if not self.ewma_decay > 0.0:
            problems.append(("ewma_decay", f"must be > 0, got {self.ewma_decay!r}"))
        if not 1 <= self.ring_size <= MAX_RING_SIZE:
            problems.append(
                ("ring_size", f"must be between 1 and {MAX_RING_SIZE}, got {self.ring_size!r}")
            )
        return problems
