"""make_balancer: build the balancer an upstream's BalancerOptions ask for."""

from __future__ import annotations

import random
from collections.abc import Sequence

from edgeward.balance.base import Balancer
from edgeward.balance.endpoint import Endpoint
from edgeward.balance.least_request import LeastRequestBalancer
from edgeward.balance.maglev import MaglevBalancer
from edgeward.balance.options import BalancerOptions
from edgeward.balance.peak_ewma import PeakEwmaBalancer
from edgeward.balance.ring_hash import RingHashBalancer
from edgeward.balance.round_robin import RoundRobinBalancer, WeightedBalancer

BALANCERS: dict[str, type[Balancer]] = {
    "round_robin": RoundRobinBalancer,
    "weighted": WeightedBalancer,
    "least_request": LeastRequestBalancer,
    "ring_hash": RingHashBalancer,
    "maglev": MaglevBalancer,
    "peak_ewma": PeakEwmaBalancer,
}


def make_balancer(
    options: BalancerOptions, endpoints: Sequence[Endpoint], rng: random.Random
) -> Balancer:
    """A ready balancer over `endpoints`; ValueError naming the key if `options` are invalid."""
    problems = options.check()
    if problems:
        raise ValueError("; ".join(f"{key}: {reason}" for key, reason in problems))
    balancer = BALANCERS[options.balance](options, rng)
    balancer.set_endpoints(endpoints)
    return balancer
