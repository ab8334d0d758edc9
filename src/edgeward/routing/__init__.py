"""Route matching (`RouteTable`) and gray / canary traffic split (`TrafficSplit`), sans-I/O."""

from edgeward.routing.config import (
    MatchConfig,
    PercentOfConfig,
    SplitEntryConfig,
    WhenConfig,
    split_problems,
)
from edgeward.routing.keys import KeySpec, parse_key
from edgeward.routing.split import Condition, TrafficSplit, percent_bucket
from edgeward.routing.table import RouteTable

__all__ = [
    "Condition",
    "KeySpec",
    "MatchConfig",
    "PercentOfConfig",
    "RouteTable",
    "SplitEntryConfig",
    "TrafficSplit",
    "WhenConfig",
    "parse_key",
    "percent_bucket",
    "split_problems",
]
