"""The native-build guard: a compiled module older than its source is never used."""

from __future__ import annotations

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
