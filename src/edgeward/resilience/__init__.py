"""Circuit breaking, outlier ejection and retries: sans-I/O, time passed in as `now`."""

from edgeward.resilience.breaker import BreakerConfig, BreakerStats, CircuitBreaker, Transition
from edgeward.resilience.outcome import CONNECT_FAILURE, OK, RESET, TIMEOUT, Outcome
from edgeward.resilience.outlier import OutlierConfig, OutlierDetector, OutlierEvent
from edgeward.resilience.retry import (
    BackoffConfig,
    BudgetConfig,
    RetryBudget,
    RetryConfig,
    RetryPolicy,
)

__all__ = [
    "CONNECT_FAILURE", "OK", "RESET", "TIMEOUT",
    "BackoffConfig", "BreakerConfig", "BreakerStats", "BudgetConfig", "CircuitBreaker",
    "Outcome", "OutlierConfig", "OutlierDetector", "OutlierEvent", "RetryBudget",
    "RetryConfig", "RetryPolicy", "Transition",
]
