"""From YAML text to a validated GatewayConfig: YAML 1.2 parsing, reading files, hashing.

`load_text` never raises anything but ConfigError for bad input, so callers print its lines
(`file: key.path: reason`) and never a traceback.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

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


def safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def parse_yaml(text: str, source: str) -> Any:
    try:
        return safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [Problem(where, f"YAML syntax error: {reason}")]) from None


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
