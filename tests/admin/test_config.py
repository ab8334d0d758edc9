"""AdminConfig: defaults pinned, refusals name the key and value."""

from __future__ import annotations

import pytest

from edgeward.admin.config import AdminConfig
from edgeward.structs import ConfigError, load_struct


def test_defaults_are_pinned() -> None:
    cfg = load_struct(AdminConfig, {})
    assert cfg == AdminConfig(
        listen=("127.0.0.1", 9901), token=None, token_env=None, max_body=1024 * 1024,
        max_head=16 * 1024, idle_timeout=75.0, series_step=5.0, series_horizon=900.0,
    )


def test_yaml_shapes_are_read() -> None:
    cfg = load_struct(AdminConfig, {
        "listen": "0.0.0.0:9000", "token_env": "EDGEWARD_ADMIN_TOKEN", "max_body": "64KiB",
        "idle_timeout": "30s", "series_step": "10s", "series_horizon": "1h",
    })
    assert cfg.listen == ("0.0.0.0", 9000) and cfg.max_body == 65536
    assert (cfg.series_step, cfg.series_horizon) == (10.0, 3600.0)
    assert cfg.resolve_token({"EDGEWARD_ADMIN_TOKEN": "t0k"}) == "t0k"
    with pytest.raises(ValueError, match="EDGEWARD_ADMIN_TOKEN is not set"):
        cfg.resolve_token({})


def problems(raw: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_struct(AdminConfig, raw, path="admin")
    return [f"{p.path}: {p.reason}" for p in info.value.problems]


def test_network_listener_without_token_is_refused() -> None:
    (line,) = problems({"listen": "0.0.0.0:9901"})
    assert line.startswith("admin.listen: 0.0.0.0 is not a loopback address")
    assert load_struct(AdminConfig, {"listen": "[::1]:9901"}).token is None
    assert load_struct(AdminConfig, {"listen": "10.0.0.5:9901", "token": "x"}).token == "x"


def test_cross_field_refusals_name_field_and_value() -> None:
    assert problems({"token": "a", "token_env": "B"}) == [
        "admin.token: set token or token_env, not both"]
    assert problems({"token": ""}) == ["admin.token: must not be empty"]
    assert problems({"max_head": 10}) == ["admin.max_head: must be at least 1KiB, got 10"]
    assert problems({"series_step": "10s", "series_horizon": "5s"}) == [
        "admin.series_horizon: must be >= series_step (10.0s), got 5.0s"]
    assert problems({"series_step": "1ms", "series_horizon": "1h"})[0].startswith(
        "admin.series_horizon: series_horizon/series_step must be <= 10000")
    assert problems({"port": 1})[0].startswith("admin.port: unknown key")
