"""Users' Python filters in a real gateway: the filter API's promises, end to end.

A filter that raises gets that request a 500 `filter_error` (counted per route and filter),
never the worker; an async filter is awaited without holding other requests and is bounded
by the route's timeout (504 `filter_timeout`); built-ins keep their order whatever the list
order; a local reply goes through the response phase of the filters before it; filters may
rewrite the body both ways, the path, the query and the upstream.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.observability.obskit import AdminGateway, value

from support.gateway import edgeward_command
from support.origin import Origin
from support.rawhttp import get

HERE = str(Path(__file__).resolve().parent)
ENV = {"PYTHONPATH": HERE}

CONFIG = """\
listen: {listen}
admin: {admin}
filters:
  stamp: {python: "sample_filters:Stamp"}
  count: {python: "sample_filters:Count", config: {header: x-seen}}
upstreams:
  app: {targets: ["ORIGIN"]}
  other: {targets: ["ORIGIN"]}
routes:
  - {name: broken, match: {path_prefix: /broken}, upstream: app,
     filters: [{python: "sample_filters:Broken"}]}
  - {name: nonsense, match: {path_prefix: /nonsense}, upstream: app,
     filters: [{python: "sample_filters:ReturnsNonsense"}]}
  - {name: waits, match: {path_prefix: /waits}, upstream: app, timeout: 2s,
     filters: [{python: "sample_filters:Waits", config: {seconds: 0.2}}]}
  - {name: too-slow, match: {path_prefix: /too-slow}, upstream: app, timeout: 300ms,
     filters: [{python: "sample_filters:Waits", config: {seconds: 5}}]}
  - name: gated
    match: {path_prefix: /gated}
    upstream: app
    rate_limit: {rate: 1/h, burst: 1}
    filters: [stamp, {python: "sample_filters:Gate"}]
  - {name: upper, match: {path_prefix: /upper}, upstream: app,
     filters: [{python: "sample_filters:Upper"}]}
  - {name: count-a, match: {path_prefix: /count-a}, upstream: app, filters: [count]}
  - {name: count-b, match: {path_prefix: /count-b}, upstream: app, filters: [count]}
  - {name: rewrite, match: {path_prefix: /rewrite}, upstream: app,
     filters: [{python: "sample_filters:Rewrite"}]}
  - {name: rest, match: {path_prefix: /}, upstream: app}
"""


@pytest.fixture(scope="module")
def gw(origin: Origin) -> Iterator[AdminGateway]:
    with AdminGateway(CONFIG.replace("ORIGIN", origin.address), env=ENV) as g:
        yield g


def test_a_raising_filter_costs_its_request_a_500_and_nothing_else(gw: AdminGateway) -> None:
    for _ in range(3):
        resp = get(gw.port, "/broken/x")
        assert resp.status == 500 and resp.json()["code"] == "filter_error"
        assert "Broken" in resp.json()["detail"]
    assert get(gw.port, "/nonsense").json()["code"] == "filter_error"
    assert get(gw.port, "/echo").status == 200  # the worker is fine
    samples = gw.scrape()
    assert value(samples, "edgeward_filter_errors_total", route="broken", filter="Broken") == 3
    assert value(samples, "edgeward_filter_errors_total", route="nonsense",
                 filter="ReturnsNonsense") == 1


def test_an_async_filter_is_awaited_and_bounded_by_the_route_timeout(gw: AdminGateway) -> None:
    resp = get(gw.port, "/waits/echo")
    assert resp.status == 200
    assert ["x-waited", "0.2"] in resp.json()["headers"]
    slow = get(gw.port, "/too-slow")
    assert slow.status == 504 and slow.json()["code"] == "filter_timeout"


def test_built_ins_keep_their_order_and_local_replies_meet_earlier_filters(
        gw: AdminGateway) -> None:
    # Gate (ORDER_AUTH) runs before the rate limit whatever its place in the list: refusals
    # by it do not spend the route's one request. Stamp (ORDER_CORS) runs before both, so
    # their local replies pass through its response phase.
    for _ in range(3):
        refused = get(gw.port, "/gated")
        assert refused.status == 401 and refused.json()["code"] == "no_pass"
        assert refused.header("www-authenticate") == "Pass"
        assert refused.header("x-stamp") == "gated"  # Stamp saw the local reply
    assert get(gw.port, "/gated/echo", [("X-Pass", "1")]).status == 200
    limited = get(gw.port, "/gated", [("X-Pass", "1")])
    assert limited.status == 429 and limited.header("x-stamp") == "gated"


def test_filters_rewrite_bodies_both_ways(gw: AdminGateway) -> None:
    resp = get(gw.port, "/upper/echo", method="POST", body=b"hello")
    assert resp.status == 200
    assert resp.header("transfer-encoding") == "chunked"
    assert b'"BODY_LENGTH": 5' in resp.body.replace(b" ", b" ")  # the echo, upper-cased
    assert resp.body == resp.body.upper()


def test_a_named_filter_is_one_instance_for_every_route(gw: AdminGateway) -> None:
    first = int(get(gw.port, "/count-a").header("x-seen") or 0)
    second = int(get(gw.port, "/count-b").header("x-seen") or 0)
    assert second == first + 1


def test_a_filter_can_change_path_query_and_upstream(gw: AdminGateway) -> None:
    echo = get(gw.port, "/rewrite/anything?x=1").json()
    assert echo["target"] == "/echo?rewritten=1"


@pytest.mark.parametrize(("entry", "problem"), [
    ('{python: "no_such_module:X"}', "routes[0].filters[0].python: cannot import no_such_module"),
    ('{python: "sample_filters:Missing"}',
     "routes[0].filters[0].python: sample_filters has no class Missing"),
    ('{python: "sample_filters:CountConfig"}', "is not a subclass of edgeward.filters.Filter"),
    ('{python: "not a target"}', "expected 'package.module:ClassName'"),
    ('{python: "sample_filters:Count", config: {colour: red}}',
     "routes[0].filters[0].config.colour: unknown key"),
    ('{python: "sample_filters:Broken", config: {a: 1}}',
     "routes[0].filters[0].config: Broken takes no config"),
    ('nowhere', "routes[0].filters[0]: no filter named 'nowhere'"),
    ('{python: "sample_filters:Gate", cors: {}}', "give exactly one filter kind"),
])
def test_bad_filter_entries_are_refused_with_key_paths(tmp_path: Path, entry: str,
                                                       problem: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("upstreams: {a: {targets: ['127.0.0.1:1']}}\n"
                    f"routes: [{{match: {{path_prefix: /}}, upstream: a, filters: [{entry}]}}]\n")
    done = subprocess.run([*edgeward_command(), "validate", str(path)], capture_output=True,
                          text=True, env={**__import__("os").environ, **ENV}, check=False)
    assert done.returncode == 1, done.stdout
    assert problem in done.stdout + done.stderr, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
