"""Users' filters: a class named `package.module:ClassName`, subclassing `Filter`.

The class's constructor takes its config as its one parameter (or none). The parameter's type
annotation says how the route's `config:` is read: a (frozen) dataclass is read like any config
section, with key-path errors and unknown keys refused; `dict`, `Any` or no annotation passes
the mapping as written. The class is imported when the config is loaded (so `edgeward validate`
catches a missing module or a bad config), and constructed when the config is compiled.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import typing
from typing import Any

from edgeward.filters.api import Filter
from edgeward.structs import load_struct

_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


class PythonFilterClass:
    """A user's filter class and how to read its config."""

    def __init__(self, cls: type[Filter], config_type: Any, takes_config: bool) -> None:
        self.cls = cls
        self.config_type = config_type  # a dataclass, or None for the raw mapping
        self.takes_config = takes_config

    def read_config(self, raw: object, path: str) -> Any:
        if not self.takes_config:
            if raw is not None:
                raise ValueError(f"{self.cls.__name__} takes no config")
            return None
        if self.config_type is not None:
            return load_struct(self.config_type, raw if raw is not None else {}, path=path)
        if raw is not None and not isinstance(raw, dict):
            raise ValueError(f"expected a mapping, got {type(raw).__name__}")
        return dict(raw) if raw else {}

    def make(self, config: Any) -> Filter:
        return self.cls(config) if self.takes_config else self.cls()  # type: ignore[call-arg]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PythonFilterClass) and other.cls is self.cls

    def __hash__(self) -> int:
        return hash(self.cls)

    def __repr__(self) -> str:
        return f"{self.cls.__module__}:{self.cls.__qualname__}"


def resolve_class(target: object) -> PythonFilterClass:
    """Import `package.module:ClassName`; ValueError says precisely what is wrong."""
    if not isinstance(target, str) or _TARGET.fullmatch(target) is None:
        raise ValueError(f"expected 'package.module:ClassName', got {target!r}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a module that fails while importing
        raise ValueError(f"importing {module_name} failed: {exc!r}") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ValueError(f"{module_name} has no class {class_name}")
    if not issubclass(cls, Filter):
        raise ValueError(f"{target} is not a subclass of edgeward.filters.Filter")
    config_type, takes_config = _config_type(cls)
    return PythonFilterClass(cls, config_type, takes_config)


def _config_type(cls: type[Filter]) -> tuple[Any, bool]:
    """(the dataclass the constructor's config parameter is annotated with, or None for the
    raw mapping; whether the constructor takes a config at all)."""
    init = cls.__init__
    if init is object.__init__ or init is Filter.__init__:
        return None, False
    try:
        params = list(inspect.signature(init).parameters.values())[1:]
    except (TypeError, ValueError):
        return None, True
    if not params:
        return None, False
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # noqa: BLE001 - unresolvable annotations: pass the mapping
        hints = {}
    hint = hints.get(params[0].name)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint, True
    return None, True
