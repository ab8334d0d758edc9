"""From YAML text to a validated GatewayConfig: YAML 1.2 parsing, reading files, hashing.

`load_text` never raises anything but ConfigError for bad input, so callers print its lines
(`file: key.path: reason`) and never a traceback.

Aliases are bounded: YAML lets `&a [*b, *b, ...]` refer to earlier nodes, so 33 KB of nested
aliases describe billions of values ("billion laughs"); PyYAML builds them shared, but every
walk over the result (validation, hashing, the /config view) expands them. After composing,
and before building any value, the document's size with every alias expanded is counted
(linear in the composed nodes, each counted once), and a document over MAX_NODES nodes, or one
whose aliases refer to themselves, is refused. The same idea as go-yaml's alias-expansion limit
that closed the Kubernetes billion-laughs issue (CVE-2019-11253).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

import yaml

from edgeward.config.schema import GatewayConfig, normalize
from edgeward.structs import ConfigError, Problem, load_struct


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. PyYAML follows YAML 1.1, where an unquoted `on`,
    `off`, `yes`, `no` is a boolean, so `retries: {on: [...]}` would arrive as `True: [...]`."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


# Most nodes (scalars, sequences, mappings, keys included) a config may hold once its aliases
# are expanded. A config of 1,000 routes and 1,000 upstreams is about 30,000 nodes; 500,000
# leaves room for ten times that while validating it stays well under a second.
MAX_NODES: Final = 500_000


class TooLarge(yaml.YAMLError):
    """The document expands to more than MAX_NODES nodes, or its aliases refer to
    themselves."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def expanded_size(root: yaml.Node, limit: int = MAX_NODES) -> int:
    """Nodes under `root` with every alias expanded, counting each shared node once per
    reference but visiting it once; stops past `limit`. Raises TooLarge for a cycle."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if children_done:
            open_nodes.discard(key)
            total = 1 + sum(sizes[id(child)] for child in children)
            sizes[key] = min(total, limit + 1)
            continue
        if key in open_nodes:
            raise TooLarge("an alias refers to a node that contains it (a recursive document)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


def duplicate_keys(root: yaml.Node) -> list[Problem]:
    """Every mapping key given twice, under its key path, with both lines. YAML 1.2 says a
    mapping's keys are unique; PyYAML keeps the last silently, which hides a typo'd copy."""
    problems: list[Problem] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue  # an alias: its keys were checked where it was defined
        seen_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], yaml.Node] = {}
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
                    continue
                where = f"{path}.{key.value}" if path else str(key.value)
                ident = (key.tag, key.value)
                if ident in first:
                    problems.append(Problem(where, (
                        f"duplicate key (line {key.start_mark.line + 1}; "
                        f"first at line {first[ident].start_mark.line + 1})")))
                else:
                    first[ident] = key
                stack.append((value, where))
    problems.sort(key=lambda p: p.path)
    return problems


def load_document(text: str, max_nodes: int = MAX_NODES) -> tuple[Any, list[Problem]]:
    """Parse YAML 1.2 (see _Yaml12Loader) into (data, duplicate-key problems); TooLarge past
    `max_nodes` expanded nodes."""
    loader = _Yaml12Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        if expanded_size(node, max_nodes) > max_nodes:
            raise TooLarge(f"the document expands to more than {max_nodes} nodes once its "
                           "aliases are expanded")
        return loader.construct_document(node), duplicate_keys(node)
    finally:
        loader.dispose()


def safe_load(text: str, max_nodes: int = MAX_NODES) -> Any:
    """Parse YAML 1.2 (see _Yaml12Loader); TooLarge past `max_nodes` expanded nodes."""
    return load_document(text, max_nodes)[0]


# Why an empty document is refused rather than read as "no routes": a file watcher can read a
# file that an editor or `cp` has truncated but not yet written; applying that would drop
# every route. A config with no routes at all is still valid when written as such (`routes:
# []`): routes may come later through POST /config or the etcd key.
EMPTY: Final = ("the config is empty (no YAML document); write at least `routes: []` for a "
                "gateway that answers 404 until routes are added")


def parse_yaml(text: str, source: str) -> tuple[Any, list[Problem]]:
    """(data, duplicate-key problems); ConfigError for text that is not YAML at all."""
    try:
        return load_document(text)
    except TooLarge as exc:
        raise ConfigError(source, [Problem("", f"YAML refused: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [Problem(where, f"YAML syntax error: {reason}")]) from None
    except RecursionError:
        raise ConfigError(source, [Problem("", "YAML refused: nested too deeply")]) from None


def load_text(text: str, source: str) -> GatewayConfig:
    """Duplicate keys and schema problems are reported together, in one ConfigError."""
    raw, duplicates = parse_yaml(text, source)
    if raw is None:
        raise ConfigError(source, [Problem("", EMPTY)])
    try:
        cfg = load_struct(GatewayConfig, normalize(raw), source)
    except ConfigError as exc:
        raise ConfigError(source, duplicates + exc.problems) from None
    if duplicates:
        raise ConfigError(source, duplicates)
    return cfg


def read_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(path, [Problem("", f"cannot read the file: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [Problem("", f"not UTF-8 text: {exc.reason}")]) from None


def load_file(path: str) -> GatewayConfig:
    return load_text(read_file(path), path)


def config_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]
