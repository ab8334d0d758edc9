from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.resilience.breaker import BreakerConfig, CircuitBreaker, Transition, open_time
from edgeward.resilience.outcome import CONNECT_FAILURE, OK, TIMEOUT, Outcome
from edgeward.structs import ConfigError, load_struct

E500 = Outcome.of_status(500)
E404 = Outcome.of_status(404)


def small(**kw: object) -> BreakerConfig:
    base: dict[str, object] = dict(
        failure_rate=0.5, min_requests=4, window=10.0, buckets=10, open_for=5.0,
        open_for_max=40.0, half_open_requests=2, half_open_timeout=3.0,
    )
    base.update(kw)
    return BreakerConfig(**base)  # type: ignore[arg-type]


def trip(b: CircuitBreaker, now: float) -> Transition:
    t = None
    for _ in range(b.cfg.min_requests):
        assert b.admit(now)
        t = b.record(E500, 0.01, now) or t
    assert t is not None
    return t


# --- config -------------------------------------------------------------------------------------


def test_defaults_are_pinned() -> None:
    cfg = BreakerConfig()
    assert (cfg.failure_rate, cfg.slow_call_rate, cfg.slow_call) == (0.5, 1.0, 60.0)
    assert (cfg.min_requests, cfg.window, cfg.buckets) == (20, 10.0, 10)
    assert (cfg.open_for, cfg.open_for_max, cfg.open_for_multiplier) == (5.0, 60.0, 2.0)
    assert (cfg.half_open_requests, cfg.half_open_timeout) == (3, 15.0)
    assert cfg.failure_on == ["5xx", "connect_failure", "timeout", "reset"]
    assert cfg.per_endpoint is False


def test_yaml_keys_are_read_with_units() -> None:
    cfg = load_struct(
        BreakerConfig,
        {"failure_rate": 0.25, "min_requests": 5, "window": "30s", "open_for": "500ms",
         "half_open_timeout": "2s", "failure_on": ["5xx"], "per_endpoint": True},
    )
    assert (cfg.failure_rate, cfg.window, cfg.open_for, cfg.half_open_timeout) == (
        0.25, 30.0, 0.5, 2.0)
    assert cfg.failure_on == ["5xx"] and cfg.per_endpoint


def test_bad_config_names_field_and_value() -> None:
    with pytest.raises(ConfigError) as err:
        load_struct(
            BreakerConfig,
            {"failure_rate": 1.5, "open_for": "10s", "open_for_max": "5s", "buckets": 0,
             "failure_on": ["5xx", "5xx"]},
            path="upstreams.orders.circuit_breaker",
        )
    text = str(err.value)
    assert "circuit_breaker.failure_rate: must be in (0, 1], got 1.5" in text
    assert "open_for_max: must be >= open_for (10.0), got 5.0" in text
    assert "buckets: must be >= 1, got 0" in text
    assert "failure_on[1]: '5xx' is listed twice" in text
    with pytest.raises(ValueError, match="failure_rate"):
        CircuitBreaker(BreakerConfig(failure_rate=None, slow_call_rate=None))


# --- closed -> open -----------------------------------------------------------------------------


def test_opens_at_failure_rate_once_min_requests_seen() -> None:
    b = CircuitBreaker(small())
    for outcome in (E500, E500, E500):  # 100 % failures but only 3 of 4 calls
        assert b.record(outcome, 0.01, 1.0) is None
    t = b.record(OK, 0.01, 1.0)  # 3/4 >= 0.5
    assert t == Transition("closed", "open", "failure_rate", 1.0)
    assert not b.admit(1.0) and b.state(1.0) == "open"


def test_stays_closed_below_rate_and_on_4xx() -> None:
    b = CircuitBreaker(small())
    for i in range(100):
        assert b.record(E404 if i % 2 else OK, 0.01, i * 0.01) is None
    for _ in range(3):
        b.record(E500, 0.01, 1.0)
    assert b.state(1.0) == "closed"


def test_failure_on_selects_what_counts() -> None:
    b = CircuitBreaker(small(failure_on=["connect_failure"]))
    for _ in range(10):
        b.record(E500, 0.01, 1.0)
        b.record(TIMEOUT, 0.01, 1.0)
    assert b.state(1.0) == "closed"
    for _ in range(40):
        b.record(CONNECT_FAILURE, 0.01, 1.0)
    assert b.state(1.0) == "open"


def test_slow_call_rate_opens() -> None:
    b = CircuitBreaker(small(failure_rate=None, slow_call_rate=0.5, slow_call=1.0))
    b.record(OK, 0.2, 1.0)
    b.record(OK, 0.2, 1.0)
    b.record(OK, 1.5, 1.0)
    t = b.record(OK, 2.0, 1.0)
    assert t is not None and t.reason == "slow_call_rate"


def test_window_forgets_old_failures() -> None:
    b = CircuitBreaker(small())
    for _ in range(3):
        b.record(E500, 0.01, 0.0)
    # 10 s later the three failures have left the window: 1 failure in 4 calls stays closed.
    for outcome in (OK, OK, OK, E500):
        assert b.record(outcome, 0.01, 10.0) is None
    assert b.stats(10.0).calls == 4


# --- open -> half-open -> closed/open -----------------------------------------------------------


def test_full_cycle_with_growing_open_time() -> None:
    b = CircuitBreaker(small())
    trip(b, 0.0)
    assert not b.admit(4.99)
    assert b.admit(5.0)  # first probe
    assert b.drain() == [Transition("open", "half_open", "open_for_elapsed", 5.0)]
    assert b.admit(5.0)
    assert not b.admit(5.0)  # only 2 probes
    assert b.record(E500, 0.1, 5.1) == Transition("half_open", "open", "probe_failed", 5.1)
    # second opening lasts 10 s
    assert not b.admit(15.0) and b.admit(15.1)
    assert b.admit(15.1)
    assert b.record(OK, 0.1, 15.2) is None
    assert b.record(OK, 0.1, 15.2) == Transition("half_open", "closed", "probes_succeeded", 15.2)
    assert b.admit(15.3) and b.stats(15.3).consecutive_openings == 0
    # after closing, the backoff starts over at open_for
    trip(b, 20.0)
    assert not b.admit(24.9) and b.admit(25.0)


def test_open_time_grows_and_is_capped() -> None:
    cfg = small()
    assert [open_time(cfg, k) for k in range(1, 7)] == [5.0, 10.0, 20.0, 40.0, 40.0, 40.0]
    assert open_time(cfg, 10**9) == 40.0
    assert open_time(small(open_for_multiplier=1.0), 50) == 5.0


def test_unfinished_probe_times_out_so_half_open_never_sticks() -> None:
    b = CircuitBreaker(small())
    trip(b, 0.0)
    assert b.admit(5.0) and b.admit(5.0)
    assert not b.admit(7.9)
    assert b.state(8.0) == "open"  # probes admitted at 5.0 never finished by 5.0 + 3.0
    assert [t.reason for t in b.drain()] == ["open_for_elapsed", "probe_timeout"]
    assert b.admit(18.0)  # opened again for 10 s, then probes again


def test_the_stuck_probe_times_out_even_when_later_probes_finish() -> None:
    b = CircuitBreaker(small(half_open_requests=3))
    trip(b, 0.0)
    assert b.admit(5.0)  # this probe hangs
    assert b.admit(6.0)
    assert b.record(OK, 0.5, 6.5) is None  # the second probe (admitted at 6.0) succeeds
    assert b.state(7.99) == "half_open"
    assert b.state(8.0) == "open"  # 5.0 + half_open_timeout: the hung probe counts as failed


def test_releasing_a_closed_phase_request_frees_no_probe() -> None:
    b = CircuitBreaker(small())
    trip(b, 0.0)
    assert b.admit(5.0) and b.admit(5.0)
    b.release(5.5, 5.0)  # admitted at 0.5, while closed, then cancelled
    assert not b.admit(5.5)


def test_release_returns_the_probe_permit() -> None:
    b = CircuitBreaker(small())
    trip(b, 0.0)
    assert b.admit(5.0) and b.admit(5.0) and not b.admit(5.0)
    b.release(5.0)  # that request was refused by a later filter and never sent
    assert b.admit(5.1)
    b.record(OK, 0.1, 5.2)
    assert b.record(OK, 0.1, 5.2) is not None
    assert b.state(5.3) == "closed"


def test_late_outcome_from_closed_phase_is_not_a_probe() -> None:
    b = CircuitBreaker(small())
    assert b.admit(0.0)  # a slow request admitted while closed
    trip(b, 1.0)
    assert b.admit(6.0)
    # the old request (admitted at 0.0, 6.5 s long) succeeds: it is not the probe's outcome
    assert b.record(OK, 6.5, 6.5) is None
    assert b.admit(6.5) and not b.admit(6.5)
    assert b.record(E500, 0.6, 6.6) is not None


# --- properties ---------------------------------------------------------------------------------

ops = st.lists(
    st.tuples(
        st.sampled_from(["admit", "ok", "fail", "slow_ok", "release", "state"]),
        st.floats(min_value=0.0, max_value=4.0),
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_half_open_admits_at_most_its_probes_and_never_sticks(
    steps: list[tuple[str, float]],
) -> None:
    cfg = small(min_requests=2, half_open_requests=2, half_open_timeout=3.0, slow_call=1.0,
                slow_call_rate=0.9)
    b = CircuitBreaker(cfg)
    now = 0.0
    admitted: list[float] = []  # admission times of requests not yet settled
    probes = 0  # permits handed out in the current half-open phase
    phase_start = 0.0

    def changed(t: Transition | None = None) -> None:
        nonlocal probes, phase_start
        moves = b.drain() + ([t] if t is not None else [])
        if moves:
            probes = 0
            phase_start = moves[-1].at

    for op, dt in steps:
        now += dt
        state = b.state(now)
        changed()
        if op == "admit":
            if b.admit(now):
                admitted.append(now)
                if state == "half_open":
                    probes += 1
            assert probes <= cfg.half_open_requests
        elif op in ("ok", "fail", "slow_ok") and admitted:
            start = admitted.pop(0)
            dur = max(now - start, 1.5) if op == "slow_ok" else now - start
            now = start + dur
            changed(b.record(E500 if op == "fail" else OK, dur, now))
        elif op == "release" and admitted:
            start = admitted.pop(0)
            was = b.state(now)
            changed()
            b.release(now, now - start)
            if was == "half_open" and start >= phase_start and probes:
                probes -= 1
        # Never stuck: if half-open refuses a request now, it is open by half_open_timeout later.
        probe = copy.deepcopy(b)
        if probe.state(now) == "half_open" and not probe.admit(now):
            assert probe.state(now + cfg.half_open_timeout) == "open"


@settings(max_examples=200, deadline=None)
@given(
    fail_at=st.floats(min_value=0.0, max_value=100.0),
    later=st.floats(min_value=0.0, max_value=30.0),
)
def test_window_forgets_failures_older_than_window(fail_at: float, later: float) -> None:
    cfg = small(min_requests=1, failure_rate=1.0, window=10.0, buckets=5)
    b = CircuitBreaker(cfg)
    b.record(OK, 0.0, fail_at)
    b.record(OK, 0.0, fail_at)  # 2 calls, so one failure is 1/3 < 1.0 and never trips
    b.record(E500, 0.0, fail_at)
    failures = b.stats(fail_at + later).failures
    if later >= cfg.window:
        assert failures == 0
    elif later < cfg.window - cfg.window / cfg.buckets:
        assert failures == 1
