from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.ratelimit.decision import Decision, response_fields, response_headers


def test_an_admitted_request_gets_the_ratelimit_headers_without_retry_after() -> None:
    headers = dict(response_headers(Decision(True, 100, 42, 0.35), policy_window=1.0))
    assert headers == {
        b"ratelimit-limit": b"100",
        b"ratelimit-remaining": b"42",
        b"ratelimit-reset": b"1",
        b"ratelimit-policy": b"100;w=1",
    }


def test_a_refused_request_gets_retry_after_rounded_up() -> None:
    headers = dict(response_headers(Decision(False, 10, 0, 5.0, 2.01), policy_window=5.0))
    assert headers[b"retry-after"] == b"3"
    assert headers[b"ratelimit-remaining"] == b"0"
    assert headers[b"ratelimit-reset"] == b"5"
    assert headers[b"ratelimit-policy"] == b"10;w=5"


def test_retry_after_is_at_least_one_second_and_exact_seconds_stay_exact() -> None:
    assert dict(response_headers(Decision(False, 1, 0, 0.2, 0.2), 1.0))[b"retry-after"] == b"1"
    assert dict(response_headers(Decision(False, 1, 0, 3.0, 3.0), 1.0))[b"retry-after"] == b"3"


def test_repr_says_what_was_decided() -> None:
    assert repr(Decision(False, 5, 0, 1.0, 0.25)) == (
        "<Decision refused 0/5 reset_after=1.000 retry_after=0.250>"
    )
    assert "shadow" in repr(Decision(True, 5, 0, 1.0, shadow=True))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 3), st.integers(-1, 3),
                          st.floats(0, 3), st.sampled_from([1.0, 2.5])), min_size=1,
                max_size=12))
def test_the_cached_lines_always_equal_the_fields(
        answers: list[tuple[bool, int, int, float, float]]) -> None:
    """Whatever order decisions come in, the lines an admitted response gets are exactly the
    fields `response_headers` gives (the cache is never stale)."""
    for allowed, limit, remaining, reset_after, window in answers:
        decision = Decision(allowed, limit, remaining, reset_after, 1.0)
        fields = [h for h in response_headers(decision, window) if h[0] != b"retry-after"]
        pairs, lines = response_fields(decision, window)
        assert pairs == fields
        assert lines == b"".join(n + b": " + v + b"\r\n" for n, v in fields)
