from __future__ import annotations

import pytest

from edgeward.balance.options import BalancerOptions
from edgeward.structs import ConfigError, load_struct


def test_defaults_are_the_documented_precedents() -> None:
    o = BalancerOptions()
    assert o.balance == "round_robin"
    assert o.hash_balance_factor is None
    assert o.active_request_bias == 1.0
    assert o.panic_threshold == 0.5
    assert o.ewma_decay == 10.0
    assert o.ring_size == 1024
    assert o.check() == []


def test_yaml_keys_are_read_with_units() -> None:
    o = load_struct(
        BalancerOptions,
        {"balance": "ring_hash", "hash_balance_factor": 1.25, "ewma_decay": "2500ms",
         "ring_size": 4096, "panic_threshold": 0, "active_request_bias": 0.5},
    )
    assert (o.balance, o.hash_balance_factor, o.ewma_decay) == ("ring_hash", 1.25, 2.5)
    assert (o.ring_size, o.panic_threshold, o.active_request_bias) == (4096, 0.0, 0.5)


@pytest.mark.parametrize(
    ("raw", "path", "fragment"),
    [
        ({"balance": "ring_hash", "hash_balance_factor": 1.0}, "hash_balance_factor", "1.0"),
        ({"balance": "round_robin", "hash_balance_factor": 1.5}, "hash_balance_factor",
         "ring_hash or maglev"),
        ({"panic_threshold": 1.5}, "panic_threshold", "1.5"),
        ({"active_request_bias": -1}, "active_request_bias", "-1"),
        ({"ewma_decay": "0s"}, "ewma_decay", "0.0"),
        ({"ring_size": 0}, "ring_size", "0"),
        ({"ring_size": 10**8}, "ring_size", "100000000"),
        ({"balance": "random"}, "balance", "'random'"),
    ],
)
def test_bad_values_are_refused_naming_key_and_value(
    raw: dict[str, object], path: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_struct(BalancerOptions, raw, source="edgeward.yaml", path="upstreams.orders")
    (problem,) = info.value.problems
    assert problem.path == f"upstreams.orders.{path}"
    assert fragment in problem.reason
