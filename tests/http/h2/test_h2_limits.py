"""The per-connection guard of the HTTP/2 attack limits (sans-I/O, injected time) and the
`server.http2` section's defaults and checks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.gateway import H2_LIMIT_FIELDS, h2_limits_changed
from edgeward.http.h2.config import Http2Config
from edgeward.http.h2.limits import (
    PING,
    RAPID_RESET,
    SETTINGS,
    STREAM_BURST,
    WINDOW_UPDATE,
    Guard,
    H2Limits,
)
from edgeward.structs import ConfigError, load_struct


def test_defaults_are_pinned() -> None:
    cfg = Http2Config()
    assert cfg.enabled is True
    assert (cfg.max_concurrent_streams, cfg.initial_stream_window,
            cfg.initial_connection_window) == (100, 65536, 1 << 20)
    assert (cfg.max_continuations, cfg.hpack_table_size) == (8, 4096)
    assert (cfg.max_reset_ratio, cfg.reset_min_streams, cfg.max_streams_per_read) == (0.5, 100,
                                                                                      200)
    assert (cfg.glitch_burst, cfg.glitch_rate, cfg.max_outbound_control) == (1000, 100.0, 1000)
    limits = cfg.limits(32768, 100)
    assert limits is not None and limits.max_header_bytes == 32768
    assert Http2Config(enabled=False).limits(32768, 100) is None


@pytest.mark.parametrize(("raw", "problem"), [
    ({"max_concurrent_streams": 0}, "max_concurrent_streams"),
    ({"initial_stream_window": "100"}, "initial_stream_window"),
    ({"initial_stream_window": "1MiB", "initial_connection_window": "64KiB"},
     "initial_connection_window: must be at least initial_stream_window"),
    ({"max_reset_ratio": 0}, "max_reset_ratio"),
    ({"glitch_rate": "0/s"}, "glitch_rate"),
])
def test_bad_settings_are_refused_with_their_key(raw: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_struct(Http2Config, raw, "h")
    assert problem in str(info.value)


def test_rapid_reset_is_judged_after_the_minimum_and_above_the_ratio() -> None:
    g = Guard(H2Limits(reset_min_streams=10, max_reset_ratio=0.5), 0.0)
    verdicts = []
    for _ in range(20):
        g.stream_opened()
        verdicts.append(g.client_reset(premature=True))
    assert verdicts[:9] == [""] * 9  # fewer streams than the minimum: not judged yet
    assert RAPID_RESET in verdicts


def test_resets_after_a_complete_response_are_not_premature() -> None:
    g = Guard(H2Limits(reset_min_streams=1), 0.0)
    for _ in range(1000):
        g.stream_opened()
        assert g.client_reset(premature=False) == ""


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=400), st.floats(0.05, 1.0))
def test_a_client_resetting_at_most_the_ratio_is_never_cut_off(resets: list[bool],
                                                              ratio: float) -> None:
    g = Guard(H2Limits(reset_min_streams=1, max_reset_ratio=ratio), 0.0)
    opened = reset = 0
    for premature in resets:
        g.stream_opened()
        opened += 1
        if premature and reset + 1 <= ratio * opened:
            reset += 1
            assert g.client_reset(True) == ""


def test_new_streams_per_read_are_counted_per_read() -> None:
    g = Guard(H2Limits(max_streams_per_read=3), 0.0)
    for _ in range(5):
        g.new_read()
        assert [g.stream_opened() for _ in range(3)] == ["", "", ""]
    assert g.stream_opened() == STREAM_BURST


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 50), st.floats(1.0, 100.0), st.lists(st.floats(0, 10), max_size=200))
def test_glitches_spaced_at_the_rate_never_end_a_connection(burst: int, rate: float,
                                                            extra: list[float]) -> None:
    """Whatever the pauses, a client whose glitches come no faster than the refill rate
    keeps its allowance."""
    g = Guard(H2Limits(glitch_burst=burst, glitch_rate=rate), 0.0)
    now = 0.0
    for pause in extra:
        now += 1.0 / rate + pause
        assert g.glitch(PING, now) == ""


def test_a_burst_beyond_the_allowance_ends_the_connection() -> None:
    g = Guard(H2Limits(glitch_burst=10, glitch_rate=1.0), 0.0)
    assert [g.glitch(PING, 0.0) for _ in range(10)] == [""] * 10
    assert g.glitch(PING, 0.0) == PING
    g2 = Guard(H2Limits(glitch_burst=10, glitch_rate=1.0), 0.0)
    for _ in range(10):
        g2.glitch(PING, 0.0)
    assert g2.glitch(PING, 5.0) == ""  # refilled meanwhile


def test_the_first_settings_frame_is_free_and_window_updates_follow_the_data_sent() -> None:
    g = Guard(H2Limits(glitch_burst=1, glitch_rate=0.001), 0.0)
    assert g.settings_received(0.0) == ""
    assert g.settings_received(0.0) == ""  # the allowance of one
    assert g.settings_received(0.0) == SETTINGS
    g = Guard(H2Limits(glitch_burst=1, glitch_rate=0.001), 0.0)
    g.data_sent = 50
    assert all(g.window_update(0.0) == "" for _ in range(600))
    g.window_update(0.0)
    assert g.window_update(0.0) == WINDOW_UPDATE


def test_a_reload_changes_http2_limits_when_any_field_differs() -> None:
    base = Http2Config().limits(32768, 100)
    assert base is not None
    # Every limit the codec takes is compared (a field added to the config and not to the
    # comparison would let a reload leave connections on the old limit).
    assert set(H2_LIMIT_FIELDS) == (set(Http2Config.__dataclass_fields__) - {"enabled"}
                                    | {"max_header_bytes", "max_headers"})
    assert not h2_limits_changed(base, Http2Config().limits(32768, 100))
    assert h2_limits_changed(base, None) and h2_limits_changed(None, base)
    assert not h2_limits_changed(None, None)
    for name in H2_LIMIT_FIELDS:
        other = Http2Config().limits(32768, 100)
        assert other is not None
        setattr(other, name, getattr(other, name) * 2 + 1)
        assert h2_limits_changed(base, other), name
