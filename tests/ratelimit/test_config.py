from __future__ import annotations

import pytest

from edgeward.ratelimit.config import RateLimitConfig, RedisConfig
from edgeward.structs import ConfigError, load_struct


def test_defaults_are_pinned() -> None:
    config = load_struct(RateLimitConfig, {"rate": "100/s"})
    assert config.rate == 100.0
    assert config.burst is None and config.effective_burst == 100   # one second of traffic
    assert config.key == "client_ip"
    assert config.algorithm == "gcra"
    assert config.nodelay is False
    assert config.enforce is True
    assert config.scope == "local"
    assert config.on_store_failure == "local"
    assert config.processes == 1
    assert config.mode == "direct"
    assert config.max_keys == 100_000
    assert config.window == pytest.approx(1.0)


def test_redis_defaults_are_pinned() -> None:
    redis = load_struct(RedisConfig, {})
    assert redis.url == "redis://127.0.0.1:6379/0"
    assert redis.timeout == pytest.approx(0.05)
    assert redis.key_prefix == "edgeward:rl"
    assert redis.open_for == pytest.approx(1.0)


def test_a_slow_rate_still_has_a_burst_of_one() -> None:
    config = load_struct(RateLimitConfig, {"rate": "5/m"})
    assert config.effective_burst == 1
    assert config.window == pytest.approx(12.0)


def test_the_yaml_shape_from_the_design_notes_loads() -> None:
    config = load_struct(RateLimitConfig, {"rate": "100/s", "burst": 50, "key": "header:X-Api-Key"})
    assert (config.effective_burst, config.window) == (50, 0.5)
    assert config.key_spec().header == "x-api-key"


@pytest.mark.parametrize(
    ("raw", "path", "reason"),
    [
        ({"rate": "0/s"}, "rate", "must be above 0"),
        ({"rate": "1/s", "burst": 0}, "burst", "must be >= 1, got 0"),
        ({"rate": "1/s", "key": "cookie:"}, "key", "cookie needs a name"),
        ({"rate": "1/s", "key": "header:bad name"}, "key", "not a valid header name"),
        ({"rate": "1/s", "nodelay": True}, "nodelay", "only applies to algorithm leaky_bucket"),
        ({"rate": "1/s", "processes": 0}, "processes", "must be >= 1"),
        ({"rate": "1/s", "max_keys": 0}, "max_keys", "must be >= 1"),
        ({"rate": "1/s", "scope": "global", "algorithm": "leaky_bucket"}, "algorithm",
         "scope global supports gcra and sliding_window"),
        ({"rate": "1/s", "mode": "lease"}, "mode", "lease needs scope: global"),
        ({"rate": "1/s", "algorithm": "fixed"}, "algorithm", "must be one of"),
        ({"burst": 3}, "rate", "required key is missing"),
    ],
)
def test_bad_settings_are_refused_with_their_key_path(
    raw: dict[str, object], path: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_struct(RateLimitConfig, raw, "gw.yaml", "routes[0].rate_limit")
    problems = info.value.problems
    assert any(p.path == f"routes[0].rate_limit.{path}" and reason in p.reason for p in problems), (
        problems
    )


@pytest.mark.parametrize(
    ("raw", "path"),
    [({"url": "http://x"}, "url"), ({"timeout": "0ms"}, "timeout"),
     ({"key_prefix": "a{b}"}, "key_prefix"), ({"open_for": "0s"}, "open_for")],
)
def test_bad_redis_settings_name_the_key(raw: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_struct(RedisConfig, raw, "gw.yaml", "redis")
    assert [p.path for p in info.value.problems] == [f"redis.{path}"]
