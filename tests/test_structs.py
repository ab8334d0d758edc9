"""The config reader: typed values, key paths in every problem, no silent acceptance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeward.structs import ConfigError, load_struct
from edgeward.values import (
    Address,
    Duration,
    Rate,
    Size,
    parse_address,
    parse_duration,
    parse_rate,
    parse_size,
)


@dataclass(frozen=True, kw_only=True)
class Inner:
    timeout: Duration = 1.0
    mode: Literal["a", "b"] = "a"

    def check(self) -> list[tuple[str, str]]:
        return [("timeout", "must be above 0")] if self.timeout <= 0 else []


@dataclass(frozen=True, kw_only=True)
class Outer:
    name: str
    rate: Rate | None = None
    size: Size = 10
    addr: Address = ("127.0.0.1", 80)
    items: list[Inner] = field(default_factory=list)
    named: dict[str, Inner] = field(default_factory=dict)
    flag: bool = False
    ratio: float = 0.5


def problems(raw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_struct(Outer, raw, "f.yaml")
    return info.value.lines()


def test_reads_every_kind_of_value() -> None:
    obj = load_struct(Outer, {
        "name": "x", "rate": "5/m", "size": "64KiB", "addr": "[::1]:8080",
        "items": [{"timeout": "250ms", "mode": "b"}], "named": {"k": {}}, "flag": True,
        "ratio": 1,
    })
    assert obj.rate == pytest.approx(5 / 60)
    assert obj.size == 65536
    assert obj.addr == ("::1", 8080)
    assert obj.items == [Inner(timeout=0.25, mode="b")]
    assert obj.named == {"k": Inner()}
    assert obj.ratio == 1.0 and isinstance(obj.ratio, float)


def test_every_problem_is_reported_with_its_key_path() -> None:
    lines = problems({
        "rate": "fast", "size": -1, "addr": "nohost", "items": [{}, {"timeout": "3"}],
        "named": {"k": {"mode": "c"}}, "flag": "yes", "extra": 1,
    })
    joined = "\n".join(lines)
    assert "f.yaml: name: required key is missing" in lines
    assert "f.yaml: rate: expected a rate like 100/s" in joined
    assert "f.yaml: size: a size cannot be negative" in joined
    assert "f.yaml: addr: expected HOST:PORT" in joined
    assert "f.yaml: items[1].timeout: expected a duration with a unit" in joined
    assert "f.yaml: named.k.mode: must be one of a, b, got 'c'" in joined
    assert "f.yaml: flag: expected a boolean, got 'yes'" in joined
    assert "f.yaml: extra: unknown key" in joined


def test_cross_field_check_reports_under_the_objects_path() -> None:
    lines = problems({"name": "x", "items": [{"timeout": "0s"}]})
    assert lines == ["f.yaml: items[0].timeout: must be above 0"]


def test_bool_is_not_a_number_and_null_only_where_allowed() -> None:
    assert "f.yaml: ratio: expected a number, got True" in problems({"name": "x", "ratio": True})
    assert load_struct(Outer, {"name": "x", "rate": None}).rate is None
    assert any("size" in line for line in problems({"name": "x", "size": None}))


@given(st.integers(min_value=0, max_value=10**6),
       st.sampled_from(["us", "ms", "s", "m", "h"]))
def test_durations_scale_by_unit(n: int, unit: str) -> None:
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    assert parse_duration(f"{n}{unit}") == pytest.approx(n * scale)


@pytest.mark.parametrize("bad", ["3", "3 sec", "-1s", "", "1.s", 3, None, True])
def test_durations_need_a_unit(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_rates_sizes_addresses() -> None:
    assert parse_rate("100/s") == 100.0
    assert parse_rate("3/h") == pytest.approx(3 / 3600)
    assert parse_size("1GiB") == 1 << 30 and parse_size("2MB") == 2_000_000
    assert parse_address("example.com:443") == ("example.com", 443)
    for bad in ("1.2.3.4", "host:0", "host:65536", "::1:80", ":80"):
        with pytest.raises(ValueError):
            parse_address(bad)
    with pytest.raises(ValueError):
        parse_rate("100")
