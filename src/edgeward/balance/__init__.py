"""Load balancers: sans-I/O endpoint choice for an upstream (see docs/balancing.md)."""

from edgeward.balance.base import Balancer
from edgeward.balance.endpoint import Endpoint
from edgeward.balance.factory import BALANCERS, make_balancer
from edgeward.balance.hashing import hash64
from edgeward.balance.options import BalancerOptions

__all__ = ["BALANCERS", "Balancer", "BalancerOptions", "Endpoint", "hash64", "make_balancer"]
