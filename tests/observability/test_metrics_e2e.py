"""GET /metrics of a real `edgeward run` process after traffic of a known shape.

Every figure asserted here is one an operator reads on a dashboard: request counts by route,
upstream and status, latency histogram counts, breaker state, rate-limit refusals, the config
reload counter and hash, connections and requests in flight, and the sum over workers.
"""

from __future__ import annotations

import glob
import http.client
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest
from tests.observability.obskit import AdminGateway, Samples, get, series, value, wait_until
from tests.support.gateway import free_port
from tests.support.origin import Origin

import edgeward

REQ = "edgeward_requests_total"


def config(origin: Origin, dead_port: int) -> str:
    return f"""
listen: "{{listen}}"
admin: "{{admin}}"
upstreams:
  good: {{targets: ["{origin.address}"]}}
  dead:
    targets: ["127.0.0.1:{dead_port}"]
    circuit_breaker: {{min_requests: 3, failure_rate: 0.5, open_for: 1m}}
routes:
  - {{name: api, match: {{path_prefix: /api}}, upstream: good}}
  - {{name: failing, match: {{path_prefix: /status}}, upstream: good}}
  - name: limited
    match: {{path_prefix: /lim}}
    upstream: good
    rate_limit: {{rate: 1/m, burst: 2}}
  - {{name: broken, match: {{path_prefix: /broken}}, upstream: dead}}
"""


@pytest.fixture(scope="module")
def shaped() -> Iterator[tuple[AdminGateway, Origin]]:
    """A gateway that has served: 7x200 on api, 3 origin 503s, 2x200 + 3x429 on limited,
    3 connect failures then 2 circuit_open on broken, 4 unrouted 404s."""
    with Origin() as origin, AdminGateway(config(origin, free_port())) as gw:
        statuses: list[int] = []
        statuses += [get(gw.port, f"/api/item/{i}").status for i in range(7)]
        statuses += [get(gw.port, "/status/503").status for _ in range(3)]
        statuses += [get(gw.port, "/lim").status for _ in range(5)]
        statuses += [get(gw.port, "/broken").status for _ in range(5)]
        statuses += [get(gw.port, f"/nowhere/{i}").status for i in range(4)]
        assert statuses == [200] * 7 + [503] * 3 + [200, 200, 429, 429, 429] \
            + [502, 502, 502, 503, 503] + [404] * 4
        yield gw, origin


def test_requests_total_counts_each_route_upstream_and_code(
        shaped: tuple[AdminGateway, Origin]) -> None:
    gw, _ = shaped
    got = series(gw.scrape(), REQ)
    want = {
        (("code", "200"), ("route", "api"), ("upstream", "good")): 7.0,
        (("code", "503"), ("route", "failing"), ("upstream", "good")): 3.0,
        (("code", "200"), ("route", "limited"), ("upstream", "good")): 2.0,
        (("code", "429"), ("route", "limited"), ("upstream", "")): 3.0,
        (("code", "502"), ("route", "broken"), ("upstream", "dead")): 3.0,
        (("code", "503"), ("route", "broken"), ("upstream", "dead")): 2.0,
        (("code", "404"), ("route", "(none)"), ("upstream", "")): 4.0,
    }
    assert got == want


def test_histograms_count_every_request_and_are_cumulative(
        shaped: tuple[AdminGateway, Origin]) -> None:
    gw, _ = shaped
    s = gw.scrape()
    for route, n, upstream_n in [("api", 7, 7), ("failing", 3, 3), ("limited", 5, 2),
                                 ("broken", 5, 0), ("(none)", 4, 0)]:
        name = "edgeward_request_duration_seconds"
        assert value(s, name + "_count", route=route) == n, route
        buckets = sorted(
            ((float(dict(lbl)["le"]), v) for lbl, v in series(s, name + "_bucket").items()
             if dict(lbl)["route"] == route))
        assert buckets[-1] == (float("inf"), n)
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), f"buckets of {route!r} not cumulative: {counts}"
        # A local answer (429, 404, circuit_open) never waited on an upstream.
        up = "edgeward_upstream_duration_seconds_count"
        assert value(s, up, route=route) == upstream_n, route
    # Every served request took some time, and less than the test's own runtime.
    assert 0 < value(s, "edgeward_request_duration_seconds_sum", route="api") < 7 * 1.0


def test_breaker_state_and_ratelimit_refusals(shaped: tuple[AdminGateway, Origin]) -> None:
    gw, _ = shaped
    # Breaker transitions are moved into metrics by the once-a-second upkeep.
    s = wait_until(lambda: (lambda s: s if value(
        s, "edgeward_circuit_breaker_state", upstream="dead") == 1 else None)(gw.scrape()),
        timeout=5, what="breaker gauge open")
    assert value(s, "edgeward_circuit_breaker_state", upstream="dead") == 1  # 1 = open
    assert value(s, "edgeward_circuit_breaker_state", upstream="good") == 0
    assert value(s, "edgeward_ratelimit_refused_total", route="limited") == 3
    assert value(s, "edgeward_ratelimit_refused_total", route="api") == 0


def test_upstream_attempts_are_counted_per_endpoint(shaped: tuple[AdminGateway, Origin]) -> None:
    gw, origin = shaped
    s = gw.scrape()
    ok = sum(v for lbl, v in series(s, "edgeward_upstream_requests_total").items()
             if dict(lbl)["upstream"] == "good" and dict(lbl)["outcome"] == "success")
    assert ok == 9  # 7 api + 2 limited that reached the origin


def test_labels_never_carry_raw_paths_or_client_addresses(
        shaped: tuple[AdminGateway, Origin]) -> None:
    gw, _ = shaped
    before = gw.scrape()
    # 50 distinct paths over routed, failing and unrouted requests, from "distinct" clients.
    for i in range(50):
        path = [f"/api/user/{i}", f"/status/503?u={i}", f"/unknown/{i}"][i % 3]
        get(gw.port, path, headers={"x-forwarded-for": f"203.0.113.{i}"})
    after = gw.scrape()
    assert set(after) == set(before), sorted(set(after) ^ set(before))
    assert len(series(after, REQ)) == 7
    for (_, labels) in after:
        for lname, lvalue in labels:
            assert not lvalue.startswith("/"), (lname, lvalue)
            assert "203.0.113." not in lvalue, (lname, lvalue)
            if lname != "endpoint":  # endpoints are upstream addresses, not clients
                assert "127.0.0.1" not in lvalue, (lname, lvalue)
    total = sum(series(after, REQ).values()) - sum(series(before, REQ).values())
    assert total == 50


def test_active_connections_and_requests_are_live_gauges() -> None:
    with Origin() as origin, AdminGateway(f"""
listen: "{{listen}}"
admin: "{{admin}}"
upstreams: {{o: {{targets: ["{origin.address}"]}}}}
routes: [{{name: all, match: {{path_prefix: /}}, upstream: o}}]
""") as gw:
        conns = [http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10) for _ in range(5)]
        for c in conns:  # five idle keep-alive connections
            c.request("GET", "/echo")
            c.getresponse().read()
        s = gw.scrape()
        assert value(s, "edgeward_active_connections") == 5
        assert value(s, "edgeward_active_requests") == 0

        done: list[int] = []

        def slow() -> None:
            done.append(get(gw.port, "/slow?ms=3000").status)

        threads = [threading.Thread(target=slow) for _ in range(3)]
        for t in threads:
            t.start()
        wait_until(lambda: value(gw.scrape(), "edgeward_active_requests") == 3,
                   timeout=2.5, what="3 requests in flight")
        assert value(gw.scrape(), "edgeward_active_connections") == 8
        for t in threads:
            t.join()
        assert done == [200, 200, 200]
        for c in conns:
            c.close()
        wait_until(lambda: value(gw.scrape(), "edgeward_active_connections") == 0,
                   timeout=5, what="connections gone")
        assert value(gw.scrape(), "edgeward_active_requests") == 0


def _info(s: Samples) -> dict[str, float]:
    return {dict(lbl)["hash"]: v for lbl, v in series(s, "edgeward_config_info").items()}


def test_config_reload_counter_and_hash_follow_post_config() -> None:
    with Origin() as origin, AdminGateway(f"""
listen: "{{listen}}"
admin: "{{admin}}"
upstreams: {{o: {{targets: ["{origin.address}"]}}}}
routes: [{{name: first, match: {{path_prefix: /}}, upstream: o}}]
""") as gw:
        s = gw.scrape()
        first_hash = gw.admin("GET", "/reloads").json()[0]["hash"]
        assert _info(s) == {first_hash: 1.0}
        assert value(s, "edgeward_config_reloads_total", result="ok") == 1
        t0 = value(s, "edgeward_config_last_reload_timestamp_seconds")

        text = (gw.gw.workdir / "edgeward.yaml").read_text().replace("name: first",
                                                                     "name: second")
        assert gw.admin("POST", "/config", text).status == 200
        s = gw.scrape()
        new_hash = gw.admin("GET", "/reloads").json()[0]["hash"]
        assert new_hash != first_hash
        assert _info(s) == {new_hash: 1.0}  # only the hash in force
        assert value(s, "edgeward_config_reloads_total", result="ok") == 2
        assert value(s, "edgeward_config_reloads_total", result="error") == 0
        assert value(s, "edgeward_config_last_reload_timestamp_seconds") >= t0
        get(gw.port, "/x")
        assert value(gw.scrape(), REQ, route="second", upstream="o", code="200") == 1

        bad = text.replace("upstream: o", "upstream: missing")
        assert gw.admin("POST", "/config", bad).status == 400
        s = gw.scrape()
        assert value(s, "edgeward_config_reloads_total", result="error") == 1
        assert value(s, "edgeward_config_reloads_total", result="ok") == 2
        assert _info(s) == {new_hash: 1.0}


def _worker_requests(metrics_dir: str) -> dict[str, float]:
    """Requests each worker has published in its snapshot file."""
    out: dict[str, float] = {}
    for path in glob.glob(os.path.join(metrics_dir, "worker-*.json")):
        with open(path) as fh:
            doc = json.load(fh)
        fams = {f["name"]: f for f in doc["snapshot"]["families"]}
        out[doc["worker_id"]] = sum(v for _, v in fams[REQ]["samples"])
    return out


def test_two_workers_one_scrape_shows_the_sum() -> None:
    with Origin() as origin, AdminGateway(f"""
listen: "{{listen}}"
admin: "{{admin}}"
upstreams: {{o: {{targets: ["{origin.address}"]}}}}
routes: [{{name: all, match: {{path_prefix: /}}, upstream: o}}]
""", workers=2) as gw:
        wait_until(lambda: len(gw.gw.children()) == 2, what="two workers")
        sent = 0
        for i in range(300):  # each on a new connection: the kernel spreads them
            assert get(gw.port, f"/w/{i}").status == 200
            sent += 1
        (metrics_dir,) = glob.glob(f"{tempfile.gettempdir()}/edgeward-metrics-{gw.gw.pid}-*")
        per_worker = wait_until(
            lambda: (lambda d: d if sum(d.values()) == sent else None)(
                _worker_requests(metrics_dir)),
            timeout=5, what="both workers published")
        assert len(per_worker) == 2 and min(per_worker.values()) > 0, per_worker
        for _ in range(8):  # whichever worker answers the scrape, the total is the same
            s = gw.scrape()
            assert value(s, REQ, route="all", upstream="o", code="200") == sent
            assert value(s, "edgeward_request_duration_seconds_count", route="all") == sent
            assert value(s, "edgeward_config_info",
                         hash=gw.admin("GET", "/reloads").json()[0]["hash"]) == 1


def test_retries_are_counted() -> None:
    with Origin() as origin, AdminGateway(f"""
listen: "{{listen}}"
admin: "{{admin}}"
upstreams: {{o: {{targets: ["{origin.address}"]}}}}
routes:
  - name: retried
    match: {{path_prefix: /}}
    upstream: o
    retries: {{attempts: 2, on: [503]}}
""") as gw:
        assert get(gw.port, "/status/503").status == 503
        assert origin.path_counts()["/status/503"] == 2  # the retry did happen
        (up,) = gw.admin("GET", "/upstreams").json()
        assert up["retries"] == 1
        assert value(gw.scrape(), "edgeward_retries_total", route="retried", upstream="o") == 1


def test_every_endpoint_has_a_health_sample_from_the_start(
        shaped: tuple[AdminGateway, Origin]) -> None:
    gw, origin = shaped
    healthy = series(gw.scrape(), "edgeward_endpoint_healthy")
    # No health checks are configured: both endpoints are healthy as the cluster holds them.
    assert healthy == {
        (("endpoint", origin.address), ("upstream", "good")): 1.0,
        (("endpoint", gw_dead_endpoint(gw)), ("upstream", "dead")): 1.0,
    }


def gw_dead_endpoint(gw: AdminGateway) -> str:
    (dead,) = [u for u in gw.admin("GET", "/upstreams").json() if u["name"] == "dead"]
    return str(dead["endpoints"][0]["address"])


def test_process_metrics_and_build_info(shaped: tuple[AdminGateway, Origin]) -> None:
    gw, _ = shaped
    samples = gw.scrape()
    assert value(samples, "process_cpu_seconds_total") > 0
    assert value(samples, "process_resident_memory_bytes") > 10 * 2**20
    assert 5 < value(samples, "process_open_fds") < value(samples, "process_max_fds")
    assert abs(value(samples, "process_start_time_seconds") - time.time()) < 3600
    (labels,) = series(samples, "edgeward_build_info")
    info = dict(labels)
    assert info["version"] == edgeward.__version__
    assert info["python"] == platform.python_version()
    assert info["compiled"] in ("true", "false")
    assert value(samples, "edgeward_open_files_exhausted_seconds_total") == 0


PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                     "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def test_breaker_state_is_one_series_per_state_with_1_for_the_current(
        shaped: tuple[AdminGateway, Origin]) -> None:
    gw, _ = shaped
    s = wait_until(lambda: (lambda s: s if value(
        s, "edgeward_circuit_breaker_states", upstream="dead", state="open") == 1 else None)(
        gw.scrape()), timeout=5, what="per-state breaker series")
    states = series(s, "edgeward_circuit_breaker_states")
    assert states == {
        (("state", "closed"), ("upstream", "dead")): 0.0,
        (("state", "open"), ("upstream", "dead")): 1.0,
        (("state", "half_open"), ("upstream", "dead")): 0.0,
    }  # "good" has no breaker: no series; "dead" shows its state before and after a change
    assert value(s, "edgeward_circuit_breaker_state", upstream="dead") == 1  # numeric: kept


def test_metrics_negotiates_openmetrics_as_prometheus_asks_for_it(
        shaped: tuple[AdminGateway, Origin]) -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
    from prometheus_client.parser import text_string_to_metric_families as text_parse

    gw, _ = shaped
    om = gw.admin("GET", "/metrics", headers={"accept": PROMETHEUS_ACCEPT})
    assert om.status == 200
    assert om.headers["content-type"] == (
        "application/openmetrics-text; version=1.0.0; charset=utf-8")
    body = om.body.decode()
    assert body.endswith("# EOF\n")
    families = {f.name: f for f in om_parse(body)}  # raises on anything OpenMetrics refuses
    requests = families["edgeward_requests"]
    assert requests.type == "counter"
    got = {(s.labels["route"], s.labels["code"]): s.value for s in requests.samples
           if s.name == "edgeward_requests_total"}
    assert got[("api", "200")] >= 7 and got[("(none)", "404")] >= 4  # (other tests add)
    assert families["edgeward_build"].type == "info"
    assert families["edgeward_request_duration_seconds"].type == "histogram"
    for accept in ("", "text/plain", "application/openmetrics-text;q=0.2,text/plain"):
        plain = gw.admin("GET", "/metrics", headers={"accept": accept} if accept else None)
        assert plain.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = {f.name: f for f in text_parse(plain.body.decode())}
        assert "# EOF" not in plain.body.decode()
        # The same figures in both formats (the text parser also drops `_total`).
        assert {(s.labels["route"], s.labels["code"]): s.value
                for s in text["edgeward_requests"].samples} == got
