"""The error catalogue (`edgeward.http.errors`): every code the gateway answers with is in it,
with its status, and documented (README.md's error table, or docs/admin.md's for the admin
API's own codes)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from edgeward.http.errors import ERRORS, error_body, error_response, title

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
    head, body = raw.split(b"\r\n\r\n", 1)
    assert b"\r\ncontent-type: application/problem+json\r\n" in head
    assert re.search(rb"\r\ndate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\n", head)
    status = ERRORS[code].status
    assert json.loads(body) == {
        "type": "urn:edgeward:problem:" + code, "title": title(code), "status": status,
        "code": code, "detail": ERRORS[code].meaning, "request_id": "rid-1"}
    assert json.loads(error_body(code, "r", "why", "t")) == {
        "type": "urn:edgeward:problem:" + code, "title": title(code), "status": status,
        "code": code, "detail": "why", "request_id": "r", "trace_id": "t"}


def test_a_filter_code_with_any_status_and_hostile_members_stays_valid_json() -> None:
    rid = 'a"b\\c\u2028'
    for _ in range(2):  # the second document comes from the cached start
        doc = json.loads(error_body("tenant_unknown", rid, 'say "no"', None, 418))
        assert doc == {"type": "urn:edgeward:problem:tenant_unknown", "title": "Tenant unknown",
                       "status": 418, "code": "tenant_unknown", "detail": 'say "no"',
                       "request_id": rid}
    assert json.loads(error_body("rate_limited", "r", status=503))["status"] == 503


def test_titles_spell_protocol_names_as_they_are_spelt() -> None:
    assert title("upstream_tls_error") == "Upstream TLS error"
    assert title("websocket_not_allowed") == "WebSocket not allowed"
    assert title("http_version_not_supported") == "HTTP version not supported"
