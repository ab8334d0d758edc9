"""`routes[].canary` config: defaults pinned, precise refusals with key paths."""

from __future__ import annotations

import pytest

from edgeward.canary.config import AnalysisConfig, CanaryConfig
from edgeward.config.text import load_text
from edgeward.structs import ConfigError

BASE = """
upstreams:
  a: {targets: ["127.0.0.1:1"]}
  b: {targets: ["127.0.0.1:2"]}
routes:
  - match: {path_prefix: /}
    canary: %s
"""


def problems(canary: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_text(BASE % canary, "gw.yaml")
    return "\n".join(err.value.lines())


def test_defaults_are_pinned() -> None:
    c = load_text(BASE % "{stable: a, canary: b}", "gw.yaml").routes[0].canary
    assert c is not None
    assert (c.step_weight, c.max_weight, c.step_interval, c.min_requests, c.autostart) == (
        10, 50, 60.0, 50, True)
    assert c.analysis == AnalysisConfig(alpha=0.05, min_error_increase=0.01,
                                        min_latency_increase=0.2, min_latency_delta=0.005,
                                        min_samples=20, samples=512,
                                        max_error_rate=None, max_p99=None)
    assert c.sticky_key is None and c.pre_promotion is None and c.post_rollback is None
    judge = c.judge_settings()
    # 6 windows (10, 20, 30, 40, 50 and the one at 50) x 4 looks x 2 tests share 5 %.
    assert judge.min_requests == 50 and judge.alpha == pytest.approx(0.05 / 48)


def test_refusals_name_the_key() -> None:
    text = problems("{stable: a, canary: a, step_weight: 0, max_weight: 101, "
                    "step_interval: 0s, sticky_key: 'head:x', min_requests: 0, "
                    "force_canary: {percent_of: {key: client_ip, percent: 5}}}")
    for line in [
        "routes[0].canary.canary: must differ from stable ('a')",
        "routes[0].canary.step_weight: must be 1..100, got 0",
        "routes[0].canary.max_weight: must be 1..100, got 101",
        "routes[0].canary.step_interval: must be above 0",
        "routes[0].canary.min_requests: must be at least 1",
        "routes[0].canary.sticky_key: unknown key",
        "routes[0].canary.force_canary.percent_of: use sticky_key",
    ]:
        assert line in text, text
    text = problems("{stable: a, canary: b, analysis: {alpha: 0.7, samples: 5}}")
    assert "routes[0].canary.analysis.alpha: must be between 0 and 0.5, got 0.7" in text
    assert "routes[0].canary.analysis.samples: must be at least min_samples (20)" in text


def test_upstreams_must_exist_and_canary_excludes_upstream() -> None:
    text = problems("{stable: a, canary: nope, post_rollback: {upstream: hooks}}")
    assert "routes[0].canary.canary: no upstream named 'nope'" in text
    assert "routes[0].canary.post_rollback.upstream: no upstream named 'hooks'" in text
    with pytest.raises(ConfigError) as err:
        load_text(BASE.replace("    canary: %s", "    upstream: a\n    canary: {stable: a, "
                                                 "canary: b}"), "gw.yaml")
    assert ("routes[0].canary: give exactly one of upstream, split, canary, redirect, "
            "respond, devices (got upstream, canary)") in "\n".join(err.value.lines())


def test_webhook_keys() -> None:
    text = problems("{stable: a, canary: b, pre_promotion: {upstream: a, path: x, "
                    "timeout: 0s}}")
    assert "routes[0].canary.pre_promotion.path: must start with '/', got 'x'" in text
    assert "routes[0].canary.pre_promotion.timeout: must be above 0" in text


def test_config_object_upstream_names() -> None:
    c = CanaryConfig(stable="a", canary="b")
    assert c.upstream_names() == [("stable", "a"), ("canary", "b")]


def test_a_fleet_canary_needs_the_top_level_etcd_settings() -> None:
    assert "routes[0].canary.fleet: a fleet canary needs a top-level etcd" in problems(
        "{stable: a, canary: b, fleet: {}}")
    assert "routes[0].canary.fleet.etcd_prefix: must start and end with /" in problems(
        "{stable: a, canary: b, fleet: {etcd_prefix: canary/}}")
    c = load_text("etcd: {endpoints: ['127.0.0.1:2379']}\n" + BASE % "{stable: a, canary: b, "
                  "fleet: {}}", "gw.yaml").routes[0].canary
    assert c is not None and c.fleet is not None
    assert (c.fleet.etcd_prefix, c.fleet.lease_ttl) == ("/edgeward/canary/", 10.0)
