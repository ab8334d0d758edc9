"""The error catalogue (`edgeward.http.errors`): every code the gateway answers with is in it,
with its status, and documented (README.md's error table, or docs/admin.md's for the admin
API's own codes)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from edgeward.http.errors import ERRORS, error_body, error_response

SRC = Path(__file__).resolve().parents[2] / "src" / "edgeward"
README = Path(__file__).resolve().parents[2] / "README.md"
ADMIN_DOC = Path(__file__).resolve().parents[2] / "docs" / "admin.md"
# Calls whose code argument (first, or the second for Reply.error) must be a catalogue code.
_CODE_FIRST = {"fail", "refuse", "Refused", "error_response"}


def _codes_used() -> set[tuple[str, str]]:
    """(code, where) for every literal code the data plane answers with."""
    found: set[tuple[str, str]] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in _CODE_FIRST:
                arg = node.args[0] if node.args else None
            elif name == "error" and len(node.args) >= 2:
                arg = node.args[1]
            else:
                continue
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add((arg.value, f"{path.relative_to(SRC)}:{node.lineno}"))
    return found


def test_every_code_the_data_plane_answers_with_is_in_the_catalogue() -> None:
    used = _codes_used()
    assert {"filter_error", "filter_timeout", "bad_request"} <= {c for c, _ in used}
    missing = sorted(where + " " + code for code, where in used if code not in ERRORS)
    assert not missing, missing


def test_every_code_is_documented_with_its_status() -> None:
    documented = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", README.read_text(), re.M))
    admin = {c: s for s, c in re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|",
                                         ADMIN_DOC.read_text(), re.M)}
    for code, entry in ERRORS.items():
        assert str(entry.status) in (documented.get(code), admin.get(code)), code


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_every_code_makes_a_response(code: str) -> None:
    raw = error_response(code, "rid-1", close=True)
    assert raw.startswith(b"HTTP/1.1 %d " % ERRORS[code].status)
    doc = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    assert doc == {"code": code, "message": ERRORS[code].meaning, "request_id": "rid-1"}
    assert json.loads(error_body(code, "r", "why", "t")) == {
        "code": code, "message": "why", "request_id": "r", "trace_id": "t"}
