from __future__ import annotations

import pytest

from edgeward.config.text import load_text
from edgeward.devices.config import (
    DEFAULT_CAS_ATTEMPTS,
    DEFAULT_MAX_DOCUMENT_BYTES,
    DEFAULT_MAX_WAIT,
    DEFAULT_SHARDS,
    DEFAULT_STREAM_MAXLEN,
    DevicesConfig,
    MqttConfig,
    RouteDevicesConfig,
)
from edgeward.structs import ConfigError


def refused(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, "gw.yaml")
    return info.value.lines()


def test_defaults_are_pinned() -> None:
    d = DevicesConfig()
    assert (d.shards, d.stream_maxlen, d.max_document_bytes, d.cas_attempts, d.timeout) == (
        DEFAULT_SHARDS, DEFAULT_STREAM_MAXLEN, DEFAULT_MAX_DOCUMENT_BYTES, DEFAULT_CAS_ATTEMPTS,
        1.0)
    assert (DEFAULT_SHARDS, DEFAULT_MAX_DOCUMENT_BYTES) == (16, 8192)
    assert RouteDevicesConfig().max_wait == DEFAULT_MAX_WAIT == 30.0
    assert MqttConfig().topic_prefix == "edgeward/things"
    assert d.mqtt is None


def test_devices_true_is_the_defaults_and_takes_the_route() -> None:
    cfg = load_text("redis: redis://127.0.0.1:6379/0\n"
                    "routes: [{match: {path_prefix: /}, devices: true}]\n", "gw.yaml")
    assert cfg.routes[0].devices == RouteDevicesConfig()


def test_bad_device_keys_are_named() -> None:
    text = "\n".join(refused(
        "routes: [{match: {path_prefix: /}, devices: {max_wait: 20s}, timeout: 10s}]\n"
        "devices: {shards: 0, mqtt: {port: 0, topic_prefix: a/+}}\n"))
    assert "routes[0].devices.max_wait: must be below the route's timeout (10s)" in text
    assert "devices.mqtt.port: must be 1-65535, got 0" in text
    assert "devices.mqtt.topic_prefix: must be non-empty without wildcards" in text
    shards = refused("devices: {shards: 0, timeout: 0s}\n")
    assert shards == ["gw.yaml: devices.shards: must be at least 1",
                      "gw.yaml: devices.timeout: must be above 0"]


def test_devices_need_redis() -> None:
    text = "\n".join(refused("routes: [{match: {path_prefix: /}, devices: true}]\n"
                             "devices: {mqtt: {}}\n"))
    assert "gw.yaml: routes[0].devices: the device API keeps shadows in Redis" in text
    assert "gw.yaml: devices.mqtt: the MQTT bridge keeps shadows in Redis" in text


def test_devices_and_upstream_on_one_route_are_refused() -> None:
    text = "\n".join(refused("redis: redis://h:1/0\nupstreams: {a: {targets: ['h:1']}}\n"
                             "routes: [{match: {path_prefix: /}, upstream: a, devices: true}]\n"))
    assert ("routes[0].devices: give exactly one of upstream, split, canary, redirect, respond, "
            "devices") in text
