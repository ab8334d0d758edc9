"""The gateway config: defaults pinned, references between sections checked."""

from __future__ import annotations

import pytest

from edgeward.config.schema import RouteConfig, ServerConfig, UpstreamConfig
from edgeward.config.text import load_text
from edgeward.structs import ConfigError


def test_defaults_are_pinned() -> None:
    s = ServerConfig()
    assert (s.header_timeout, s.idle_timeout, s.drain_timeout) == (10.0, 75.0, 10.0)
    assert (s.max_request_line, s.max_header_bytes, s.max_pipelined) == (8192, 32768, 16)
    assert s.replay_limit == 65536 and s.trusted_proxies == []
    u = UpstreamConfig(targets=[("a", 1)])
    assert (u.connect_timeout, u.response_header_timeout, u.idle_timeout) == (5.0, 30.0, 60.0)
    assert u.max_idle == 64 and u.balance == "round_robin" and u.panic_threshold == 0.5
    r = RouteConfig(upstream="x")
    assert r.timeout == 60.0 and r.max_body_size is None and r.rate_limit is None


def refused(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, "gw.yaml")
    return info.value.lines()


def test_minimal_config_and_shorthands() -> None:
    cfg = load_text("""
listen: 127.0.0.1:9000
admin: 127.0.0.1:9901
redis: redis://127.0.0.1:6379/0
upstreams: {a: {targets: ["127.0.0.1:1"]}}
routes: [{match: {path_prefix: /}, upstream: a}]
""", "gw.yaml")
    assert cfg.admin is not None and cfg.admin.listen == ("127.0.0.1", 9901)
    assert cfg.redis is not None and cfg.redis.url == "redis://127.0.0.1:6379/0"
    assert cfg.route_name(0) == "route_0"


def test_cross_section_references_are_checked() -> None:
    lines = refused("""
upstreams:
  a: {targets: ["127.0.0.1:1"]}
  b: {discovery: {etcd: orders}}
routes:
  - {name: r, match: {path_prefix: /}, upstream: missing}
  - {name: r, match: {path_prefix: /x}, split: [{upstream: nope}]}
  - {match: {path_prefix: /y}, upstream: a, rate_limit: {rate: 5/s, scope: global}}
""")
    text = "\n".join(lines)
    assert "gw.yaml: routes[0].upstream: no upstream named 'missing'" in text
    assert "gw.yaml: routes[1].name: 'r' is also routes[0]" in text
    assert "gw.yaml: routes[1].split[0].upstream: no upstream named 'nope'" in text
    assert "routes[2].rate_limit.scope: scope: global needs a top-level redis" in text
    assert "upstreams.b.discovery.etcd: etcd discovery needs a top-level etcd" in text
    weights = refused('upstreams: {a: {targets: ["127.0.0.1:1"], weights: {"127.0.0.1:2": 3}}}')
    assert weights == ["gw.yaml: upstreams.a.weights.127.0.0.1:2: not one of targets"]


def test_upstream_needs_exactly_one_endpoint_source_and_route_one_destination() -> None:
    text = "\n".join(refused("""
upstreams: {a: {}, b: {targets: ["h:1"], discovery: {dns: x.internal, port: 80}}}
routes: [{match: {path_prefix: /}}, {match: {path: /x}, upstream: a, split: [{upstream: a}]}]
"""))
    assert "upstreams.a.targets: give either targets or discovery" in text
    assert "upstreams.b.targets: give either targets or discovery" in text
    assert ("routes[0].upstream: give exactly one of upstream, split, canary, redirect, "
            "respond, devices") in text
    assert ("routes[1].split: give exactly one of upstream, split, canary, redirect, respond, "
            "devices "
            "(got upstream, split)") in text


def test_yaml_syntax_errors_name_the_line() -> None:
    lines = refused("listen: 1\nroutes: [\n  - a: b\n")
    assert len(lines) == 1 and lines[0].startswith("gw.yaml: line ")
    assert "YAML syntax error" in lines[0]


def test_bad_values_deep_inside() -> None:
    # Problems are reported layer by layer: a section whose own values are wrong is not also
    # checked against its neighbours, so every line printed is a real, independent problem.
    text = "\n".join(refused("""
upstreams:
  a: {targets: ["127.0.0.1:1"], balance: fastest, hash_on: "header:", connect_timeout: 5}
routes:
  - {match: {path_prefix: /, methods: ["GE T"]}, upstream: a, timeout: 0s}
"""))
    assert "upstreams.a.balance: must be one of" in text
    hash_on = refused('upstreams: {a: {targets: ["127.0.0.1:1"], hash_on: "header:"}}')
    assert len(hash_on) == 1 and hash_on[0].startswith("gw.yaml: upstreams.a.hash_on:")
    assert "upstreams.a.connect_timeout: expected a duration with a unit" in text
    assert "routes[0].match.methods" in text


def test_route_problems_are_listed_with_type_errors_in_one_run() -> None:
    lines = refused("""
upstreams:
  a: {targets: ["127.0.0.1:1"], connect_timeout: 5}
routes:
  - {name: r, match: {path_prefix: /}, upstream: a}
  - {name: r, match: {path_prefix: /x}, upstream: b}
""")
    assert lines == [
        "gw.yaml: upstreams.a.connect_timeout: expected a duration with a unit like 250ms "
        "or 3s, got 5",
        "gw.yaml: routes[1].name: 'r' is also routes[0]",
        "gw.yaml: routes[1].upstream: no upstream named 'b'",
    ]


def test_an_unknown_key_suggests_the_closest_known_one() -> None:
    lines = refused("""
upstreams:
  a: {targets: ["127.0.0.1:1"], conect_timeout: 5s}
routes:
  - {match: {path_prefx: /}, upstream: a}
""")
    assert "upstreams.a.conect_timeout: unknown key; did you mean `connect_timeout`?" in (
        "\n".join(lines))
    assert "routes[0].match.path_prefx: unknown key; did you mean `path_prefix`?" in (
        "\n".join(lines))


def test_an_unknown_key_far_from_every_known_one_gets_no_suggestion() -> None:
    (line,) = refused("zebra: 1\n")
    assert line.startswith("gw.yaml: zebra: unknown key (known keys: access_log, admin,")


def test_a_route_name_cannot_take_the_unmatched_label() -> None:
    lines = refused("""
upstreams: {a: {targets: ["127.0.0.1:1"]}}
routes:
  - {name: "(none)", match: {path_prefix: /}, upstream: a}
""")
    assert lines == ["gw.yaml: routes[0].name: cannot start with `(`: metrics label requests "
                     "that matched no route `(none)`"]


def test_logging_defaults_and_values() -> None:
    cfg = load_text("routes: []\n", "gw.yaml")
    assert (cfg.logging.level, cfg.logging.format) == ("info", "text")
    cfg = load_text("logging: {level: debug, format: json}\nroutes: []\n", "gw.yaml")
    assert (cfg.logging.level, cfg.logging.format) == ("debug", "json")
    (line,) = refused("logging: {format: logfmt}\n")
    assert line.startswith("gw.yaml: logging.format: must be one of text, json")
