"""Issue 18, finding 2: the admin API's cross-site protection, against a real gateway with no
admin token (the loopback default).

Before: `POST /config` with `Origin: null` applied a config; `POST /drain` with `Origin: null`
and a form content type made the one-worker gateway exit; a request with
`Host: rebind.evil.example:PORT` and a matching Origin applied a config and read `/config` (DNS
rebinding). Now each is refused (403 forbidden_origin / forbidden_host, 415 for a form body)
and the gateway keeps its config and keeps running.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.observability.obskit import AdminGateway, call, get
from tests.support.origin import Origin

FORM = "application/x-www-form-urlencoded"


def config(origin: Origin, extra: str = "") -> str:
    return f"""
listen: "{{listen}}"
admin: "{{admin}}"
upstreams:
  o: {{targets: ["{origin.address}"]}}
routes:
  - name: api
    match: {{path_prefix: /api}}
    upstream: o
{extra}"""


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with Origin() as o:
        yield o


@pytest.fixture(scope="module")
def gw(origin: Origin) -> Iterator[AdminGateway]:
    with AdminGateway(config(origin)) as gw:
        yield gw


def hostile_text(origin: Origin, gw: AdminGateway) -> str:
    """The running config plus a route a web page would like to add."""
    text = (gw.gw.workdir / "edgeward.yaml").read_text()
    return text + """  - name: stolen
    match: {path_prefix: /stolen}
    upstream: o
"""


def assert_unchanged(gw: AdminGateway) -> None:
    assert [r["name"] for r in gw.admin("GET", "/routes").json()] == ["api"]
    assert get(gw.port, "/stolen/x").status == 404
    assert gw.admin("GET", "/ready").status == 200


def test_origin_null_cannot_post_a_config(gw: AdminGateway, origin: Origin) -> None:
    for ctype in ("application/yaml", FORM, "text/plain"):
        reply = call(gw.admin_port, "POST", "/config", hostile_text(origin, gw),
                     {"origin": "null", "content-type": ctype})
        assert (reply.status, reply.json()["code"]) == (403, "forbidden_origin"), ctype
    assert_unchanged(gw)


def test_origin_null_form_cannot_drain(gw: AdminGateway) -> None:
    reply = call(gw.admin_port, "POST", "/drain", "a=1", {"origin": "null", "content-type": FORM})
    assert (reply.status, reply.json()["code"]) == (403, "forbidden_origin")
    assert gw.gw.proc is not None and gw.gw.proc.poll() is None
    assert_unchanged(gw)


def test_a_form_without_origin_cannot_drain(gw: AdminGateway) -> None:
    """A browser that sends no Origin on a form post still sends a form content type."""
    for headers in ({"content-type": FORM}, {"content-type": "text/plain"}, {}):
        reply = call(gw.admin_port, "POST", "/drain", "a=1", headers)
        assert (reply.status, reply.json()["code"]) == (415, "unsupported_media_type"), headers
    assert_unchanged(gw)


def test_sec_fetch_site_cross_site_cannot_post(gw: AdminGateway, origin: Origin) -> None:
    reply = call(gw.admin_port, "POST", "/config", hostile_text(origin, gw),
                 {"sec-fetch-site": "cross-site", "content-type": "application/yaml"})
    assert (reply.status, reply.json()["code"]) == (403, "forbidden_origin")
    assert_unchanged(gw)


def test_dns_rebinding_can_neither_post_nor_read(gw: AdminGateway, origin: Origin) -> None:
    host = f"rebind.evil.example:{gw.admin_port}"
    page = {"host": host, "origin": f"http://{host}"}
    reply = call(gw.admin_port, "POST", "/config", hostile_text(origin, gw),
                 page | {"content-type": "application/yaml"})
    assert (reply.status, reply.json()["code"]) == (403, "forbidden_host")
    for path in ("/config", "/routes", "/"):
        read = call(gw.admin_port, "GET", path, headers={"host": host})
        assert (read.status, read.json()["code"]) == (403, "forbidden_host"), path
    assert_unchanged(gw)


def test_operators_tools_still_work(gw: AdminGateway, origin: Origin) -> None:
    """curl with a YAML content type, and the dashboard's own same-origin page."""
    local = f"127.0.0.1:{gw.admin_port}"
    assert call(gw.admin_port, "GET", "/config", headers={"host": f"localhost:{gw.admin_port}"}
                ).status == 200
    text = (gw.gw.workdir / "edgeward.yaml").read_text()
    reply = call(gw.admin_port, "POST", "/config", text + "# same routes\n",
                 {"host": local, "origin": f"http://{local}", "content-type": "application/yaml",
                  "sec-fetch-site": "same-origin"})
    assert (reply.status, reply.json()) == (200, {"applied": True})
    assert_unchanged(gw)
