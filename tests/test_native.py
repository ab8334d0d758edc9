"""The native-build guard: a compiled module older than its source is never used."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
from pathlib import Path

import pytest

from edgeward import _native

MODULES = ("pkg/a.py", "pkg/b.py")


def make_tree(root: Path, *, built: bool) -> None:
    (root / "pkg").mkdir()
    for m in MODULES:
        (root / m).write_text("x = 1\n")
    if built:
        for m in MODULES:
            Path(_native._shim(m, str(root))).write_bytes(b"\x7fELF")
        (root / f"0123__mypyc{_native._SUFFIX}").write_bytes(b"\x7fELF")


def test_a_fresh_build_is_kept(tmp_path: Path) -> None:
    make_tree(tmp_path, built=True)
    assert _native.stale(str(tmp_path), MODULES) is False
    _native.guard(str(tmp_path), MODULES)
    assert all(os.path.exists(_native._shim(m, str(tmp_path))) for m in MODULES)


def test_an_edited_source_removes_the_whole_group(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_tree(tmp_path, built=True)
    later = os.stat(_native._shim("pkg/b.py", str(tmp_path))).st_mtime_ns + 10**9
    os.utime(tmp_path / "pkg/a.py", ns=(later, later))
    assert _native.stale(str(tmp_path), MODULES) is True
    _native.guard(str(tmp_path), MODULES)
    assert not any(os.path.exists(_native._shim(m, str(tmp_path))) for m in MODULES)
    assert not list(tmp_path.glob("*__mypyc*"))
    assert "running as plain Python" in capsys.readouterr().err


def test_a_partial_build_is_not_used(tmp_path: Path) -> None:
    make_tree(tmp_path, built=True)
    os.unlink(_native._shim("pkg/a.py", str(tmp_path)))
    assert _native.stale(str(tmp_path), MODULES) is True


def test_no_build_is_plain_python(tmp_path: Path) -> None:
    make_tree(tmp_path, built=False)
    assert _native.stale(str(tmp_path), MODULES) is None
    _native.guard(str(tmp_path), MODULES)


def _allowed_bases(src: Path) -> set[tuple[str, str]]:
    """(module, class) pairs of compiled classes marked allow_interpreted_subclasses."""
    allowed: set[tuple[str, str]] = set()
    for rel in _native.MODULES:
        tree = ast.parse((src / rel).read_text())
        module = rel[:-3].replace("/", ".")
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                    "allow_interpreted_subclasses=True" in ast.unparse(d)
                    for d in node.decorator_list):
                allowed.add((module, node.name))
    return allowed


def test_no_interpreted_class_inherits_from_a_compiled_one() -> None:
    """The compiled build refuses such a class at run time ("interpreted classes cannot inherit
    from compiled"), which plain Python never shows: every edgeward module is imported and each
    class outside the compiled group is checked against its bases."""
    src = Path(_native._SRC)
    compiled = {m[:-3].replace("/", ".") for m in _native.MODULES}
    allowed = _allowed_bases(src)
    wrong: list[str] = []
    for path in sorted((src / "edgeward").rglob("*.py")):
        module = str(path.relative_to(src))[:-3].replace("/", ".").removesuffix(".__init__")
        if module in compiled or module.endswith("__main__"):
            continue
        mod = importlib.import_module(module)
        for name, cls in vars(mod).items():
            if not inspect.isclass(cls) or cls.__module__ != module:
                continue
            for base in cls.__mro__[1:]:
                if base.__module__ in compiled and (base.__module__, base.__name__) not in allowed:
                    wrong.append(f"{module}.{name} inherits {base.__module__}.{base.__name__}")
    assert not wrong, "\n".join(wrong)
