from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.resilience.outcome import CONNECT_FAILURE, OK, RESET, TIMEOUT, Outcome
from edgeward.resilience.retry import (
    BackoffConfig,
    BudgetConfig,
    RetryBudget,
    RetryConfig,
    RetryPolicy,
)
from edgeward.structs import ConfigError, load_struct

E502 = Outcome.of_status(502)
E503 = Outcome.of_status(503)
E500 = Outcome.of_status(500)


def test_defaults_are_pinned() -> None:
    cfg = RetryConfig()
    assert cfg.attempts == 2
    assert cfg.on == ["connect_failure", "reset", "timeout"]
    assert cfg.per_try_timeout is None
    assert (cfg.backoff.base, cfg.backoff.max) == (0.025, 0.25)
    assert cfg.retry_non_idempotent is False
    assert cfg.replay_body_limit == 64 * 1024
    assert cfg.budget == BudgetConfig(percent=20.0, min_concurrency=3)


def test_yaml_keys() -> None:
    cfg = load_struct(RetryConfig, {
        "attempts": 3, "on": ["503", "connect_failure"], "per_try_timeout": "1s",
        "backoff": {"base": "10ms", "max": "1s"}, "replay_body_limit": "1MiB",
        "budget": {"percent": 50, "min_concurrency": 1},
    })
    assert (cfg.attempts, cfg.per_try_timeout, cfg.replay_body_limit) == (3, 1.0, 1024 * 1024)
    assert cfg.backoff == BackoffConfig(base=0.01, max=1.0)
    assert cfg.budget == BudgetConfig(percent=50.0, min_concurrency=1)
    assert load_struct(RetryConfig, {"budget": None}).budget is None


def test_bad_config_names_field_and_value() -> None:
    with pytest.raises(ConfigError) as err:
        load_struct(RetryConfig, {"on": ["503", "418"]}, path="routes[0].retries")
    text = str(err.value)
    assert "routes[0].retries.on[1]: must be one of" in text and "'418'" in text
    with pytest.raises(ValueError, match=r"retries.on\[1\]: '503' is listed twice"):
        RetryPolicy(RetryConfig(on=["503", "503"]))
    with pytest.raises(ConfigError) as err:
        load_struct(RetryConfig, {"attempts": 0}, path="routes[0].retries")
    assert "routes[0].retries.attempts: must be >= 1 (1 = no retries), got 0" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_struct(RetryConfig, {"backoff": {"base": "1s", "max": "10ms"},
                                  "budget": {"percent": 120}}, path="routes[0].retries")
    text = str(err.value)
    assert "routes[0].retries.backoff.max: must be >= base (1.0), got 0.01" in text
    assert "routes[0].retries.budget.percent: must be 0-100, got 120.0" in text


def test_retries_only_listed_outcomes_within_attempts() -> None:
    p = RetryPolicy(RetryConfig(attempts=3, on=["reset", "503"]))
    assert p.should_retry(1, RESET, "GET", True)
    assert p.should_retry(2, E503, "GET", True)
    assert not p.should_retry(3, E503, "GET", True)  # third try was the last
    assert not p.should_retry(1, E502, "GET", True)
    assert not p.should_retry(1, TIMEOUT, "GET", True)
    assert not p.should_retry(1, OK, "GET", True)


def test_5xx_covers_every_server_error() -> None:
    p = RetryPolicy(RetryConfig(on=["5xx"]))
    assert p.should_retry(1, E500, "GET", True) and p.should_retry(1, E502, "GET", True)
    assert not p.should_retry(1, Outcome.of_status(429), "GET", True)


def test_non_idempotent_requests_are_not_repeated_once_sent() -> None:
    p = RetryPolicy(RetryConfig(on=["connect_failure", "reset", "503"]))
    assert not p.should_retry(1, RESET, "POST", True)
    assert not p.should_retry(1, E503, "PATCH", True)
    assert p.should_retry(1, CONNECT_FAILURE, "POST", True)  # never reached the upstream
    assert p.should_retry(1, RESET, "PUT", True)  # PUT is idempotent
    loose = RetryPolicy(RetryConfig(on=["reset"], retry_non_idempotent=True))
    assert loose.should_retry(1, RESET, "POST", True)


def test_body_that_cannot_be_replayed_is_not_retried() -> None:
    p = RetryPolicy(RetryConfig(replay_body_limit=1000))
    assert not p.should_retry(1, CONNECT_FAILURE, "PUT", False)
    assert p.can_replay(1000) and not p.can_replay(1001) and p.can_replay(None)


def test_attempts_one_means_no_retries() -> None:
    p = RetryPolicy(RetryConfig(attempts=1))
    assert not p.should_retry(1, CONNECT_FAILURE, "GET", True)


def test_backoff_ceiling_doubles_to_max() -> None:
    p = RetryPolicy(RetryConfig(backoff=BackoffConfig(base=0.025, max=0.25)))
    rng = random.Random(7)
    samples = {n: [p.backoff(n, rng) for _ in range(2000)] for n in (1, 2, 3, 5, 10**6)}
    assert max(samples[1]) <= 0.025 and max(samples[1]) > 0.024
    assert 0.049 < max(samples[2]) <= 0.05
    assert 0.099 < max(samples[3]) <= 0.1
    assert 0.24 < max(samples[5]) <= 0.25
    assert max(samples[10**6]) <= 0.25
    # full jitter: the mean is half the ceiling, not the ceiling
    assert 0.011 < sum(samples[1]) / 2000 < 0.014


@settings(max_examples=300, deadline=None)
@given(attempt=st.integers(min_value=-5, max_value=10**9), seed=st.integers(0, 2**32),
       base=st.floats(min_value=0.001, max_value=5.0), extra=st.floats(0.0, 10.0))
def test_backoff_within_zero_and_max(attempt: int, seed: int, base: float, extra: float) -> None:
    p = RetryPolicy(RetryConfig(backoff=BackoffConfig(base=base, max=base + extra)))
    wait = p.backoff(attempt, random.Random(seed))
    assert 0.0 <= wait <= base + extra


@settings(max_examples=300, deadline=None)
@given(attempts=st.integers(1, 6),
       outcomes=st.lists(st.sampled_from([OK, E503, RESET, TIMEOUT, CONNECT_FAILURE, E500]),
                         min_size=1, max_size=20),
       method=st.sampled_from(["GET", "POST", "PUT"]))
def test_a_request_is_never_tried_more_than_attempts(
    attempts: int, outcomes: list[Outcome], method: str
) -> None:
    p = RetryPolicy(RetryConfig(attempts=attempts, on=["503", "reset", "timeout",
                                                        "connect_failure"]))
    tries = 0
    for outcome in outcomes:  # the upstream answers these, in order, to successive tries
        tries += 1
        if not p.should_retry(tries, outcome, method, True):
            break
    assert tries <= attempts


def test_budget_is_percent_of_active_with_a_floor() -> None:
    b = RetryBudget(BudgetConfig(percent=20.0, min_concurrency=3))
    assert b.allowed(0) == 3 and b.allowed(10) == 3 and b.allowed(100) == 20
    assert b.try_acquire(100, 19) and not b.try_acquire(100, 20)
    assert b.try_acquire(1, 2) and not b.try_acquire(1, 3)
    assert RetryBudget(BudgetConfig(percent=29.0, min_concurrency=0)).allowed(100) == 29
    assert not RetryBudget(BudgetConfig(percent=0, min_concurrency=0)).try_acquire(1000, 0)


@settings(max_examples=200, deadline=None)
@given(
    percent=st.floats(0.0, 100.0), floor=st.integers(0, 5),
    events=st.lists(st.tuples(st.sampled_from(["start", "fail", "finish"]), st.integers(0, 50)),
                    max_size=300),
)
def test_retries_in_flight_never_exceed_the_budget(
    percent: float, floor: int, events: list[tuple[str, int]]
) -> None:
    budget = RetryBudget(BudgetConfig(percent=percent, min_concurrency=floor))
    requests: list[bool] = []  # in flight; True if the current try is a retry
    for kind, pick in events:
        if kind == "start":
            requests.append(False)
        elif requests:
            i = pick % len(requests)
            retries = sum(requests)
            if kind == "fail" and budget.try_acquire(len(requests), retries - requests[i]):
                requests[i] = True  # that request goes on as a retry
                # at the moment a retry starts, retries in flight fit the budget
                assert sum(requests) <= max(floor, int(len(requests) * percent / 100.0))
            else:
                requests.pop(i)
