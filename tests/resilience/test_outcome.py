from __future__ import annotations

import pytest

from edgeward.resilience.outcome import (
    CONNECT_FAILURE,
    F_5XX,
    F_503,
    F_TIMEOUT,
    RESET,
    TIMEOUT,
    Outcome,
    mask_of,
)


def test_status_outcomes_are_shared_not_rebuilt() -> None:
    assert Outcome.of_status(503) is Outcome.of_status(503)
    assert Outcome.of_error("timeout") is TIMEOUT


def test_failure_classification() -> None:
    assert not Outcome.of_status(200).failed
    assert not Outcome.of_status(404).failed
    assert Outcome.of_status(500).failed and not Outcome.of_status(500).gateway_failure
    assert Outcome.of_status(503).gateway_failure
    for err in (CONNECT_FAILURE, TIMEOUT, RESET):
        assert err.failed and err.gateway_failure and err.status is None
    reset_after_head = Outcome(200, "reset")
    assert reset_after_head.failed and reset_after_head.status == 200


def test_flags_match_config_masks() -> None:
    assert Outcome.of_status(503).flags & mask_of(["503"]) == F_503
    assert Outcome.of_status(502).flags & mask_of(["503"]) == 0
    assert Outcome.of_status(599).flags & mask_of(["5xx"]) == F_5XX
    assert TIMEOUT.flags & mask_of(["timeout", "reset"]) == F_TIMEOUT


@pytest.mark.parametrize(
    ("status", "error", "fragment"),
    [(None, None, "neither"), (99, None, "99"), (600, None, "600"), (None, "eof", "'eof'")],
)
def test_invalid_outcomes_name_the_value(
    status: int | None, error: str | None, fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        Outcome(status, error)  # type: ignore[arg-type]
    if status is not None:
        with pytest.raises(ValueError, match=fragment):
            Outcome.of_status(status)


def test_outcomes_are_immutable_values() -> None:
    o = Outcome.of_status(200)
    with pytest.raises(AttributeError):
        o.status = 500  # type: ignore[misc]
    assert Outcome(200) == o and hash(Outcome(200)) == hash(o)
    assert repr(Outcome(502, "reset")) == "Outcome(502, reset)"
