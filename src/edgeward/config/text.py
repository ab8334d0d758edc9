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


def safe_load(text: str, max_nodes: int = MAX_NODES) -> Any:
    """Parse YAML 1.2 (see _Yaml12Loader); TooLarge past `max_nodes` expanded nodes."""
    loader = _Yaml12Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if expanded_size(node, max_nodes) > max_nodes:
            raise TooLarge(f"the document expands to more than {max_nodes} nodes once its "
                           "aliases are expanded")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def parse_yaml(text: str, source: str) -> Any:
    try:
        return safe_load(text)
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
    raw = parse_yaml(text, source)
    if raw is None:
        raw = {}
    return load_struct(GatewayConfig, normalize(raw), source)


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
