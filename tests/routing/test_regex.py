"""path_regex runs on RE2: whole-path matching, linear time, unsupported syntax refused."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeward.config.text import load_text
from edgeward.request import SimpleRequest
from edgeward.routing.config import MatchConfig
from edgeward.routing.regex import compile_fullmatch, pattern_problem
from edgeward.routing.table import RouteTable
from edgeward.structs import ConfigError

EVIL = r"/v1/users/([A-Za-z0-9_-]+/?)+"


def test_fullmatch_semantics() -> None:
    match = compile_fullmatch(r"/orders/\d+")
    assert match("/orders/12") is not None
    assert match("/orders/12x") is None
    assert match("/x/orders/12") is None


def test_the_backtracking_pattern_answers_for_a_path_python_re_cannot() -> None:
    """With Python `re` this path takes 2**40 steps (days); RE2 answers at once."""
    match = compile_fullmatch(EVIL)
    assert match("/v1/users/" + "a" * 40 + "!") is None
    assert match("/v1/users/" + "a" * 40 + "/b/") is not None


@pytest.mark.parametrize("pattern", [r"(a)\1", r"/(?=x)", r"/(?!x)", r"/a++", r"(?<=a)b"])
def test_patterns_re2_cannot_express_are_refused(pattern: str) -> None:
    reason = pattern_problem(pattern)
    assert reason is not None and reason.startswith("does not compile as an RE2 pattern (")
    assert repr(pattern) in reason


def test_a_refused_pattern_names_its_key_path() -> None:
    with pytest.raises(ConfigError) as info:
        load_text("""
upstreams: {o: {targets: ["127.0.0.1:1"]}}
routes:
  - {match: {path: /ok}, upstream: o}
  - {match: {path_regex: '/(\\w+)/\\1'}, upstream: o}
""", "gw.yaml")
    (line,) = info.value.lines()
    assert line.startswith("gw.yaml: routes[1].match.path_regex: does not compile as an RE2 "
                           "pattern (invalid escape sequence: \\1)")


def test_route_table_uses_it() -> None:
    table = RouteTable([(MatchConfig(path_regex=EVIL), "users"), (MatchConfig(), "rest")])
    assert table.match(SimpleRequest(path="/v1/users/" + "a" * 40 + "!")) == "rest"
    assert table.match(SimpleRequest(path="/v1/users/abc/")) == "users"


@given(st.text(alphabet="ab/-_!", max_size=30))
def test_agrees_with_python_re_on_patterns_both_accept(path: str) -> None:
    for pattern in (r"/a+/?", r"[ab]*/(a|b)+", r"(/[ab_-]+)*"):
        assert (compile_fullmatch(pattern)(path) is not None) == \
            (re.fullmatch(pattern, path) is not None)
