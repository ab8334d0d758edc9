"""Issue 18, finding 5: routes match the normalised path, and that path is what is forwarded.

Before: with `/ip` rate-limited and a catch-all route, `//ip/a`, `/x/../ip/a`, `/%69p/a` and
`/./ip/a` all went to the catch-all, bypassing the limit, while the origin resolved them to
`/ip/a`. Now the path is normalised before routing (merge slashes, resolve dot segments,
decode unreserved escapes) and forwarded normalised; `server.path_normalization: reject`
refuses a path that is not in normal form and `off` routes and forwards it as sent.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.gateway import GatewayProcess
from support.origin import Origin
from support.rawhttp import get

CONFIG = """\
listen: {listen}
SERVER
upstreams:
  app: {targets: ["ORIGIN"]}
routes:
  - name: ip
    match: {path_prefix: /ip}
    upstream: app
    rate_limit: {rate: 1/h, burst: 1}
  - {name: rest, match: {path_prefix: /}, upstream: app}
"""
BYPASSES = ["//ip/a", "/x/../ip/a", "/%69p/a", "/./ip/a", "/ip//a", "/%2e/ip/a"]


def _gateway(origin: Origin, policy: str | None) -> GatewayProcess:
    server = f"server: {{path_normalization: {policy}}}" if policy else ""
    return GatewayProcess.config(
        CONFIG.replace("ORIGIN", origin.address).replace("SERVER", server))


@pytest.fixture(scope="module")
def normalizing(origin: Origin) -> Iterator[GatewayProcess]:
    with _gateway(origin, None) as g:  # the default: normalize
        yield g


def test_every_spelling_of_the_path_meets_the_limit(normalizing: GatewayProcess,
                                                    origin: Origin) -> None:
    first = get(normalizing.port, "/ip/a")
    assert first.status == 200
    for target in BYPASSES:
        resp = get(normalizing.port, target)
        assert resp.status == 429, (target, resp.status, resp.body)
        assert resp.json()["code"] == "rate_limited"


def test_the_normalised_path_is_forwarded(normalizing: GatewayProcess) -> None:
    resp = get(normalizing.port, "/x/./y/../echo?q=%2e")
    assert resp.status == 200
    assert resp.json()["target"] == "/x/echo?q=%2e"  # the query is forwarded as sent


def test_reject_refuses_a_path_not_in_normal_form(origin: Origin) -> None:
    with _gateway(origin, "reject") as gw:
        for target in BYPASSES:
            resp = get(gw.port, target)
            assert resp.status == 400, target
            assert resp.json()["code"] == "bad_request"
        assert get(gw.port, "/echo").status == 200


def test_off_routes_and_forwards_as_sent(origin: Origin) -> None:
    with _gateway(origin, "off") as gw:
        resp = get(gw.port, "//echo")
        assert resp.status == 200
        assert resp.json()["target"] == "//echo"


def test_paths_no_normalisation_can_make_valid_are_refused(normalizing: GatewayProcess) -> None:
    for target in ["/../etc/passwd", "/a/%zz", "/a%4"]:
        resp = get(normalizing.port, target)
        assert resp.status == 400, target
