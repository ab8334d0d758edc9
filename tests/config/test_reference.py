"""config/reference.py: defaults are rendered as YAML a user can paste, never Python reprs."""

from __future__ import annotations

import yaml

from edgeward.config.reference import _yaml, render
from edgeward.values import ADDRESS, DURATION, SIZE


def test_defaults_are_yaml_not_python_reprs() -> None:
    defaults = [line.split(" | ")[2] for line in render().splitlines()
                if line.startswith("| `") and line.count(" | ") >= 3]
    assert defaults
    for cell in defaults:
        assert "('" not in cell and "['" not in cell and "True" not in cell, cell
        if cell.startswith("`") and cell.endswith("`"):
            yaml.safe_load(cell.strip("`"))  # each one parses as YAML


def test_values_render_as_a_user_writes_them() -> None:
    assert _yaml([("127.0.0.1", 2379)], {ADDRESS}) == "[127.0.0.1:2379]"
    assert _yaml(("::1", 80), {ADDRESS}) == "[::1]:80"
    assert _yaml(["*", "GET"], set()) == '["*", GET]'
    assert _yaml(75.0, {DURATION}) == "1m15s"
    assert _yaml(1 << 20, {SIZE}) == "1MiB"
    assert _yaml(False, set()) == "false"
    assert _yaml({}, set()) == "{}"
