"""Routing config read through the real loader: defaults pinned, errors carry key path and value."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from edgeward.routing.config import (
    DEFAULT_WEIGHT,
    MatchConfig,
    SplitEntryConfig,
    WhenConfig,
    split_problems,
)
from edgeward.structs import ConfigError, load_struct


@dataclass(frozen=True, kw_only=True)
class Route:
    """A stand-in for the route config the integrator writes: match + split, split rules checked."""

    match: MatchConfig = field(default_factory=MatchConfig)
    split: list[SplitEntryConfig] = field(default_factory=list)

    def check(self) -> list[tuple[str, str]]:
        return split_problems(self.split) if self.split else []


def problems(raw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_struct(Route, raw, "test.yaml", "routes[0]")
    return [f"{p.path}: {p.reason}" for p in info.value.problems]


def test_defaults_are_pinned() -> None:
    m = MatchConfig()
    assert (m.host, m.hosts, m.path, m.path_prefix, m.path_regex) == (None, [], None, None, None)
    assert (m.methods, m.headers, m.header_present) == ([], {}, [])
    assert m.host_patterns() == ("*",)
    assert DEFAULT_WEIGHT == 1
    assert SplitEntryConfig(upstream="a").weight == 1


def test_a_full_route_loads() -> None:
    r = load_struct(Route, {
        "match": {"host": "*.Example.com", "path_prefix": "/api/", "methods": ["get", "POST"],
                  "headers": {"x-env": "prod"}, "header_present": ["authorization"]},
        "split": [
            {"upstream": "orders-canary", "when": {"header": {"x-canary": "1"}}},
            {"upstream": "orders-canary", "when": {"percent_of": {"key": "cookie:uid",
                                                                  "percent": 5}}},
            {"upstream": "orders", "weight": 9},
            {"upstream": "orders-b"},
        ],
    })
    assert r.match.host_patterns() == ("*.example.com",)
    assert r.split[1].when is not None and r.split[1].when.percent_of is not None
    assert r.split[1].when.percent_of.percent == 5.0
    assert [e.weight for e in r.split] == [1, 1, 9, 1]


@pytest.mark.parametrize(("raw", "expected"), [
    ({"match": {"path": "/a", "path_prefix": "/b"}},
     "routes[0].match.path_prefix: give at most one of path, path_prefix, path_regex"),
    ({"match": {"path_prefix": "api"}},
     "routes[0].match.path_prefix: must start with '/', got 'api'"),
    ({"match": {"path_regex": "/a(["}}, "routes[0].match.path_regex: does not compile"),
    ({"match": {"methods": ["GET", "GE T"]}},
     "routes[0].match.methods[1]: 'GE T' is not an HTTP method token"),
    ({"match": {"host": "a.*.com"}}, "routes[0].match.host: host 'a.*.com': a wildcard is only"),
    ({"match": {"host": "a.com:8080"}}, "routes[0].match.host: host 'a.com:8080' must not carry"),
    ({"match": {"host": "a.com", "hosts": ["b.com"]}},
     "routes[0].match.hosts: give either host or hosts, not both"),
    ({"match": {"hosts": ["ok.com", "bad host"]}},
     "routes[0].match.hosts[1]: host 'bad host' is not a valid host name"),
    ({"match": {"headers": {"bad name": "1"}}}, "routes[0].match.headers.bad name: 'bad name'"),
    ({"match": {"paths": "/a"}}, "routes[0].match.paths: unknown key"),
    ({"split": [{"upstream": "a", "weight": -1}]},
     "routes[0].split[0].weight: must be >= 0, got -1"),
    ({"split": [{"upstream": "a", "when": {}}]},
     "routes[0].split[0].when: needs at least one of header, cookie, percent_of"),
    ({"split": [{"upstream": "a", "weight": 5, "when": {"header": {"x": "1"}}}, {"upstream": "b"}]},
     "routes[0].split[0].weight: has no effect on an entry with `when` (got 5)"),
    ({"split": [{"upstream": "a", "when": {"percent_of": {"key": "hdr:x", "percent": 5}}},
                {"upstream": "b"}]},
     "routes[0].split[0].when.percent_of.key: unknown key 'hdr:x'"),
    ({"split": [{"upstream": "a", "when": {"percent_of": {"key": "path", "percent": 101}}},
                {"upstream": "b"}]},
     "routes[0].split[0].when.percent_of.percent: must be between 0 and 100, got 101"),
    ({"split": [{"upstream": "a", "when": {"percent_of": {"key": "path", "percent": 1.005}}},
                {"upstream": "b"}]},
     "routes[0].split[0].when.percent_of.percent: resolution is 0.01"),
    ({"split": [{"upstream": "a", "when": {"header": {"x": "1"}}}]},
     "routes[0].split: every entry has `when`; add an entry without `when`"),
    ({"split": [{"upstream": "a", "weight": 0}]},
     "routes[0].split: the entries without `when` all have weight 0"),
])
def test_errors_name_the_key_and_value(raw: object, expected: str) -> None:
    found = problems(raw)
    assert any(p.startswith(expected) for p in found), found


def test_valid_hosts_and_percent_bounds_are_accepted() -> None:
    for host in ["*", "localhost", "api.example.com", "*.example.com", "10.0.0.1", "[::1]", "::1"]:
        assert MatchConfig(host=host).check() == [], host
    for pct in [0, 0.01, 12.34, 100]:
        w = load_struct(WhenConfig, {"percent_of": {"key": "client_ip", "percent": pct}})
        assert w.percent_of is not None and w.percent_of.percent == pct
    assert split_problems([]) == [("split", "needs at least one entry")]
