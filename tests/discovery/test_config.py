from __future__ import annotations

import pytest

from edgeward.discovery.config import DEFAULT_DNS_REFRESH, DEFAULT_DNS_TYPE, DiscoveryConfig
from edgeward.structs import ConfigError, load_struct


def test_defaults_are_pinned() -> None:
    cfg = load_struct(DiscoveryConfig, {"etcd": "orders"})
    assert (cfg.etcd, cfg.dns, cfg.port, cfg.resolver) == ("orders", None, None, None)
    assert cfg.dns_type == DEFAULT_DNS_TYPE == "auto"
    assert cfg.dns_refresh == DEFAULT_DNS_REFRESH == 5.0


def test_dns_shape_is_read() -> None:
    cfg = load_struct(DiscoveryConfig, {"dns": "orders.internal", "dns_type": "A", "port": 8000,
                                        "dns_refresh": "2s", "resolver": "127.0.0.1:5353"})
    assert (cfg.dns, cfg.dns_type, cfg.port, cfg.dns_refresh, cfg.resolver) == (
        "orders.internal", "A", 8000, 2.0, ("127.0.0.1", 5353))


@pytest.mark.parametrize(("raw", "where"), [
    ({}, "upstreams.o.discovery: set exactly one"),
    ({"etcd": "a", "dns": "b"}, "upstreams.o.discovery: set exactly one"),
    ({"etcd": "a/b"}, "upstreams.o.discovery.etcd"),
    ({"dns": "x", "dns_type": "AAAA"}, "upstreams.o.discovery.port: required"),
    ({"dns": "x", "port": 0}, "upstreams.o.discovery.port"),
    ({"dns": "x", "dns_refresh": "0s"}, "upstreams.o.discovery.dns_refresh"),
    ({"dns": "x", "dns_type": "MX"}, "upstreams.o.discovery.dns_type"),
])
def test_errors_name_the_key(raw: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_struct(DiscoveryConfig, raw, path="upstreams.o.discovery")
    assert where in str(err.value)
