"""config/text.py: YAML 1.2 reading with a bound on alias expansion."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from edgeward.config.text import MAX_NODES, expanded_size, load_text, safe_load
from edgeward.structs import ConfigError


def compose(text: str) -> yaml.Node:
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    assert node is not None
    return node


def test_expanded_size_counts_every_reference() -> None:
    assert expanded_size(compose("a: 1")) == 3                       # mapping, key, value
    assert expanded_size(compose("a: &x [1, 2]\nb: *x\nc: *x")) == 1 + 3 * (1 + 3)
    nested = "a0: &a0 [x, x]\n" + "".join(
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 40))
    assert expanded_size(compose(nested), limit=1000) == 1001         # stops past the limit


def test_a_recursive_document_is_refused() -> None:
    with pytest.raises(ConfigError, match="refers to a node that contains it"):
        load_text("a: &a [1, *a]\n", "gw.yaml")


def test_aliases_within_the_limit_still_load() -> None:
    assert safe_load("a: &x {k: v}\nb: *x\n") == {"a": {"k": "v"}, "b": {"k": "v"}}
    assert MAX_NODES == 500_000


def test_billion_laughs_is_refused_with_one_precise_line() -> None:
    text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
    with pytest.raises(ConfigError) as info:
        load_text(text, "gw.yaml")
    assert info.value.lines() == [
        "gw.yaml: (top): YAML refused: the document expands to more than 500000 nodes once "
        "its aliases are expanded"]


def test_deep_nesting_is_a_config_error_not_a_traceback() -> None:
    with pytest.raises(ConfigError, match="YAML"):
        load_text("a: " + "[" * 5000 + "]" * 5000, "gw.yaml")


def test_a_duplicated_key_is_refused_with_its_path_and_both_lines() -> None:
    text = ("upstreams:\n"
            "  a: {targets: ['127.0.0.1:1']}\n"
            "  b: {targets: ['127.0.0.1:2']}\n"
            "  a: {targets: ['127.0.0.1:3']}\n"
            "routes:\n"
            "  - {match: {path_prefix: /, path_prefix: /x}, upstream: a}\n")
    with pytest.raises(ConfigError) as info:
        load_text(text, "gw.yaml")
    assert info.value.lines() == [
        "gw.yaml: routes[0].match.path_prefix: duplicate key (line 6; first at line 6)",
        "gw.yaml: upstreams.a: duplicate key (line 4; first at line 2)",
    ]


def test_duplicates_are_listed_with_the_schema_problems() -> None:
    text = "listen: 1\nlisten: 127.0.0.1:80\nroutes: 3\n"
    with pytest.raises(ConfigError) as info:
        load_text(text, "gw.yaml")
    assert [p.path for p in info.value.problems] == ["listen", "routes"]


def test_keys_shared_through_an_alias_are_not_duplicates() -> None:
    text = ("upstreams:\n  a: &up {targets: ['127.0.0.1:1']}\n  b: *up\n"
            "routes:\n  - {match: {path_prefix: /}, upstream: a}\n")
    assert sorted(load_text(text, "gw.yaml").upstreams) == ["a", "b"]


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_an_empty_config_is_refused(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(text, "gw.yaml")
    (line,) = info.value.lines()
    assert line.startswith("gw.yaml: (top): the config is empty")


def test_a_config_without_routes_is_valid_when_written_so() -> None:
    assert load_text("routes: []\n", "gw.yaml").routes == []
    assert load_text("{}\n", "gw.yaml").routes == []


DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("text", [
    "",
    "upstreams:\n  a: {targets: ['127.0.0.1:1']}\n  b: {targets: ['127.0.0.1:1']}\n"
    "  a: {targets: ['127.0.0.1:1']}\nroutes: []\n",
    "routes:\n  - {match: {path_prefx: /}, upstream: a}\nupstreams: {a: {targets: ['h:1']}}\n",
    "routes:\n  - {name: r, match: {path_prefix: /}, upstream: a}\n"
    "  - {name: r, match: {path_prefix: /}, upstream: a}\nupstreams: {a: {targets: ['h:1']}}\n",
    "routes:\n  - {match: {path_prefix: /}, upstream: orders}\n",
])
def test_troubleshooting_quotes_the_messages_as_the_loader_writes_them(text: str) -> None:
    page = (DOCS / "troubleshooting.md").read_text()
    with pytest.raises(ConfigError) as info:
        load_text(text, "gw.yaml")
    for problem in info.value.problems:
        reason = problem.reason.split(" (known keys")[0].split("; write")[0]
        # The page's examples may use other numbers and names than this config.
        pattern = re.sub(r"'[^']*'", "'[^']*'", re.sub(r"\d+", "NUM", reason))
        pattern = re.escape(pattern).replace("NUM", r"\d+").replace(
            re.escape("'[^']*'"), "'[^']*'")
        assert re.search(pattern, page), (problem, pattern)
