"""The native build: a compiled module that no longer matches the sources it was built from
is never used, and nothing subclasses a compiled class the build closes to Python."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeward import _native


@pytest.fixture(autouse=True)
def _guard_active(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard's own behaviour is under test: EDGEWARD_NATIVE=0 in the caller's environment
    (the test script's plain pass) would make it skip every check."""
    monkeypatch.delenv("EDGEWARD_NATIVE", raising=False)


MODULES = ("pkg/a.py", "pkg/b.py")


def make_tree(root: Path, *, built: bool) -> None:
    """pkg/a.py (compiled) takes a Final constant from pkg/consts.py (interpreted), as
    routing/split.py takes PERCENT_BUCKETS from routing/config.py."""
    (root / "pkg").mkdir()
    (root / "pkg/__init__.py").write_text("")
    (root / "pkg/consts.py").write_text("from typing import Final\nLIMIT: Final = 100\n")
    (root / "pkg/unrelated.py").write_text("y = 2\n")
    (root / "pkg/a.py").write_text("from pkg.consts import LIMIT\nx = LIMIT\n")
    (root / "pkg/b.py").write_text("from . import a\nfrom typing import TYPE_CHECKING\n"
                                   "if TYPE_CHECKING:\n    import os\n")
    if built:
        for m in MODULES:
            Path(_native._shim(m, str(root))).write_bytes(b"\x7fELF")
        (root / f"0123__mypyc{_native._SUFFIX}").write_bytes(b"\x7fELF")
        _native.write_manifest(str(root), MODULES)


def test_the_manifest_holds_the_import_closure(tmp_path: Path) -> None:
    make_tree(tmp_path, built=False)
    assert _native.dependencies(str(tmp_path), MODULES) == [
        "pkg/__init__.py", "pkg/a.py", "pkg/b.py", "pkg/consts.py"]


def test_the_real_closure_holds_the_interpreted_modules_constants_come_from() -> None:
    deps = _native.dependencies()
    assert set(_native.MODULES) <= set(deps)
    assert "edgeward/routing/config.py" in deps      # PERCENT_BUCKETS, inlined in split.py
    assert "edgeward/__init__.py" in deps


def test_a_fresh_build_is_kept(tmp_path: Path) -> None:
    make_tree(tmp_path, built=True)
    assert _native.stale(str(tmp_path), MODULES) is False
    assert _native.guard(str(tmp_path), MODULES) is None
    assert all(os.path.exists(_native._shim(m, str(tmp_path))) for m in MODULES)


def test_a_newer_mtime_with_the_same_content_keeps_the_build(tmp_path: Path) -> None:
    make_tree(tmp_path, built=True)
    later = os.stat(_native._shim("pkg/b.py", str(tmp_path))).st_mtime_ns + 10**9
    os.utime(tmp_path / "pkg/a.py", ns=(later, later))      # a checkout, a copy
    assert _native.stale(str(tmp_path), MODULES) is False


@pytest.mark.parametrize("edited", ["pkg/a.py", "pkg/consts.py", "pkg/__init__.py"])
def test_an_edited_source_removes_the_whole_group(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], edited: str) -> None:
    make_tree(tmp_path, built=True)
    with open(tmp_path / edited, "a") as f:
        f.write("# edited\n")
    assert _native.stale(str(tmp_path), MODULES) is True
    _native.guard(str(tmp_path), MODULES)
    assert not any(os.path.exists(_native._shim(m, str(tmp_path))) for m in MODULES)
    assert not list(tmp_path.glob("*__mypyc*"))
    assert not (tmp_path / "pkg" / _native.MANIFEST).exists()
    assert "running as plain Python" in capsys.readouterr().err


def test_a_source_outside_the_closure_does_not_matter(tmp_path: Path) -> None:
    make_tree(tmp_path, built=True)
    (tmp_path / "pkg/unrelated.py").write_text("y = 3\n")
    assert _native.stale(str(tmp_path), MODULES) is False


def test_a_build_without_its_manifest_is_not_used(tmp_path: Path) -> None:
    make_tree(tmp_path, built=True)
    (tmp_path / "pkg" / _native.MANIFEST).unlink()
    assert _native.stale(str(tmp_path), MODULES) is True
    make_tree_manifest = tmp_path / "pkg" / _native.MANIFEST
    make_tree_manifest.write_text("not json")
    assert _native.stale(str(tmp_path), MODULES) is True


def test_a_partial_build_is_not_used(tmp_path: Path) -> None:
    make_tree(tmp_path, built=True)
    os.unlink(_native._shim("pkg/a.py", str(tmp_path)))
    assert _native.stale(str(tmp_path), MODULES) is True


def test_a_stale_build_that_cannot_be_removed_is_not_loaded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    make_tree(tmp_path, built=True)
    (tmp_path / "pkg/consts.py").write_text("from typing import Final\nLIMIT: Final = 7\n")

    def refuse(*args: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_native, "clean", refuse)
    monkeypatch.syspath_prepend(str(tmp_path))
    hook = _native.guard(str(tmp_path), MODULES)
    assert hook is not None and sys.meta_path[0] is hook
    try:
        # The shim beside pkg/a.py is not a loadable extension: importing it would fail.
        module = importlib.import_module("pkg.a")
        assert module.x == 7 and module.__file__ == str(tmp_path / "pkg/a.py")
    finally:
        sys.meta_path.remove(hook)
        for name in [n for n in sys.modules if n == "pkg" or n.startswith("pkg.")]:
            del sys.modules[name]
    assert "cannot be removed (Permission denied)" in capsys.readouterr().err


def _import_a(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              hook: _native.SourcesFirst | None) -> str:
    """Where pkg.a loads from under `hook` (then removed)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        return str(importlib.import_module("pkg.a").__file__)
    finally:
        if hook is not None:
            sys.meta_path.remove(hook)
        for name in [n for n in sys.modules if n == "pkg" or n.startswith("pkg.")]:
            del sys.modules[name]


def test_no_build_is_plain_python_for_the_whole_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path, built=False)
    assert _native.stale(str(tmp_path), MODULES) is None
    hook = _native.guard(str(tmp_path), MODULES)
    assert hook is not None and _native.state == "none"
    # A build that finishes while the process runs is not mixed into it (the shims here are
    # not loadable: importing one would fail).
    for m in MODULES:
        Path(_native._shim(m, str(tmp_path))).write_bytes(b"\x7fELF")
    assert _import_a(tmp_path, monkeypatch, hook) == str(tmp_path / "pkg/a.py")
    assert "plain Python" in (_native.note() or "")


def test_a_build_under_way_is_left_alone_and_not_loaded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    make_tree(tmp_path, built=True)
    os.unlink(_native._shim("pkg/b.py", str(tmp_path)))  # half written
    lock = tmp_path / "pkg" / _native.LOCK
    lock.write_text(str(os.getpid()))  # a live process
    assert _native.builder(str(tmp_path), MODULES) == os.getpid()
    hook = _native.guard(str(tmp_path), MODULES)
    assert hook is not None and _native.state == "building"
    assert os.path.exists(_native._shim("pkg/a.py", str(tmp_path)))  # not cleaned
    assert _import_a(tmp_path, monkeypatch, hook) == str(tmp_path / "pkg/a.py")
    assert "compiling in the background" in (_native.note() or "")
    assert capsys.readouterr().err == ""


def test_the_lock_of_a_build_that_died_is_ignored(tmp_path: Path) -> None:
    make_tree(tmp_path, built=True)
    os.unlink(_native._shim("pkg/b.py", str(tmp_path)))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / "pkg" / _native.LOCK).write_text(dead)
    assert _native.builder(str(tmp_path), MODULES) is None
    hook = _native.guard(str(tmp_path), MODULES)
    assert _native.state == "stale" and hook is not None
    sys.meta_path.remove(hook)
    assert not os.path.exists(_native._shim("pkg/a.py", str(tmp_path)))  # cleaned


def test_a_build_refuses_to_run_beside_another() -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    lock = Path(_native._lock_path(_native._SRC, _native.MODULES))
    assert not lock.exists()
    try:
        lock.write_text(str(other.pid))
        done = subprocess.run([sys.executable, "-m", "edgeward.build_native"], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 1
        assert f"already under way (process {other.pid})" in done.stderr
    finally:
        lock.unlink()
        other.kill()
        other.wait()


# --- what the compiled build allows --------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _opened_to_python(node: ast.ClassDef) -> bool:
    """`@mypyc_attr(allow_interpreted_subclasses=True)` or `native_class=False`."""
    for d in node.decorator_list:
        if isinstance(d, ast.Call) and getattr(d.func, "id", "") == "mypyc_attr":
            for kw in d.keywords:
                value = getattr(kw.value, "value", None)
                if (kw.arg, value) in (("allow_interpreted_subclasses", True),
                                       ("native_class", False)):
                    return True
    return False


def _imports(tree: ast.Module) -> dict[str, tuple[str, str]]:
    return {a.asname or a.name: (n.module, a.name) for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module for a in n.names}


def _closed_classes() -> dict[tuple[str, str], str]:
    """(module, name) -> where, for each compiled class Python code may not subclass, under
    its own module and under modules that re-export it."""
    closed: dict[tuple[str, str], str] = {}
    for m in _native.MODULES:
        module = m[:-3].replace("/", ".")
        for node in ast.parse((SRC / m).read_text()).body:
            if isinstance(node, ast.ClassDef) and not _opened_to_python(node):
                closed[(module, node.name)] = f"{m}:{node.lineno}"
    for path in SRC.rglob("__init__.py"):
        package = ".".join(path.relative_to(SRC).parts[:-1])
        for alias, origin in _imports(ast.parse(path.read_text())).items():
            if origin in closed:
                closed[(package, alias)] = closed[origin]
    return closed


def test_no_interpreted_class_derives_from_a_compiled_one() -> None:
    """mypyc refuses, at import, an interpreted class deriving from a compiled one not opened
    to Python: it would work as plain Python and fail only in the compiled build."""
    closed = _closed_classes()
    compiled = {SRC / m for m in _native.MODULES}
    found = []
    for path in [*SRC.rglob("*.py"), *(ROOT / "tests").rglob("*.py"),
                 *(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "examples").rglob("*.py")]:
        if path in compiled:
            continue
        tree = ast.parse(path.read_text())
        names = _imports(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    origin = names.get(base.id) if isinstance(base, ast.Name) else None
                    if origin in closed:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
                                     f"derives from {closed[origin]}")
    assert not found, found


def test_each_compiled_module_is_listed_once() -> None:
    """mypyc refuses a module named twice ("Duplicate module"), and the build then falls back
    to plain Python for everything."""
    assert len(set(_native.MODULES)) == len(_native.MODULES)
    missing = [m for m in _native.MODULES if not (Path(_native._SRC) / m).is_file()]
    assert not missing


def test_edgeward_plain_loads_every_compiled_module_from_its_source() -> None:
    """EDGEWARD_NATIVE=0 (the test script's second pass) runs the data plane interpreted even
    beside a fresh native build."""
    import subprocess
    import sys

    code = ("import importlib, edgeward._native as n\n"
            "mods = [importlib.import_module(m[:-3].replace('/', '.')) for m in n.MODULES]\n"
            "print(all(m.__file__.endswith('.py') for m in mods))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "EDGEWARD_NATIVE": "0"}, timeout=60, check=True)
    assert done.stdout.strip() == "True", done.stderr
