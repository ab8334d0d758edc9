"""next_action: obtain at once, renew at 2/3 of the lifetime, back off exponentially."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edgeward.tls.acme.schedule import RenewalPolicy, next_action

POLICY = RenewalPolicy(renew_at=2 / 3, retry_base=60.0, retry_max=6 * 3600.0)
DAY = 86400.0


def test_the_usual_90_day_certificate() -> None:
    issued = 1_000_000.0
    assert next_action(issued, issued, issued + 90 * DAY, 0, POLICY) == (
        issued + 60 * DAY, "renew")                           # 30 days before the end
    assert next_action(issued + 70 * DAY, issued, issued + 90 * DAY, 0, POLICY) == (
        issued + 70 * DAY, "renew")                           # overdue: now
    assert next_action(5.0, None, None, 0, POLICY) == (5.0, "obtain")
    assert next_action(5.0, None, None, 3, POLICY) == (5.0 + 240.0, "obtain")
    assert next_action(issued + 91 * DAY, issued, issued + 90 * DAY, 0, POLICY)[1] == "obtain"


def test_backoff_doubles_from_base_to_max() -> None:
    assert [POLICY.backoff(f) for f in range(0, 6)] == [0.0, 60.0, 120.0, 240.0, 480.0, 960.0]
    assert POLICY.backoff(9) == 15360.0 and POLICY.backoff(10) == 6 * 3600.0
    assert POLICY.backoff(10_000) == 6 * 3600.0


times = st.floats(0, 4e9)
lifetimes = st.floats(3600, 400 * DAY)
failures = st.integers(0, 200)


@given(times, times, lifetimes, failures)
def test_never_in_the_past_and_never_beyond_the_backoff_once_due(
        now: float, not_before: float, lifetime: float, failed: int) -> None:
    not_after = not_before + lifetime
    when, what = next_action(now, not_before, not_after, failed, POLICY)
    assert when >= now
    renew_point = POLICY.renew_time(not_before, not_after)
    assert abs(renew_point - (not_before + lifetime * 2 / 3)) <= 1e-6 * max(1.0, not_after)
    assert not_before <= renew_point <= not_after
    if not_after <= now:
        assert what == "obtain" and when == now + POLICY.backoff(failed)
    elif renew_point <= now:
        assert when == now + POLICY.backoff(failed) <= now + POLICY.retry_max
    else:
        assert when == max(renew_point, now + POLICY.backoff(failed))


@given(times, st.integers(0, 100))
def test_backoff_grows_with_failures_and_is_capped(now: float, failed: int) -> None:
    a = next_action(now, None, None, failed, POLICY)[0]
    b = next_action(now, None, None, failed + 1, POLICY)[0]
    assert a <= b <= now + POLICY.retry_max
    if failed:
        assert b - now >= POLICY.retry_base
