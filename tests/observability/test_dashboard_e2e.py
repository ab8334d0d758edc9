"""The live dashboard of a real gateway, rendered by headless Chromium while traffic runs.

Chromium loads http://127.0.0.1:ADMIN/, runs the page's script (which polls api/series,
upstreams and reloads) and dumps the resulting DOM; the test reads the figures a person
would read on screen.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.observability.obskit import AdminGateway, get, wait_until
from tests.support.origin import Origin

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path("/tmp/edgeward-dashboard-e2e.png")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync",
         "--virtual-time-budget=8000"]

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                reason=f"headless Chromium not installed at {CHROMIUM}")


def chromium(*args: str) -> str:
    profile = tempfile.mkdtemp(prefix="edgeward-chromium-")
    try:
        out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                             capture_output=True, timeout=60, check=True)
        return out.stdout.decode(errors="replace")
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def busy_gateway() -> Iterator[tuple[AdminGateway, Origin]]:
    """A gateway with two routes under steady traffic (one of them partly failing)."""
    with Origin() as origin, AdminGateway(f"""
listen: "{{listen}}"
admin: {{listen: "{{admin}}", series_step: 1s}}
upstreams: {{shop: {{targets: ["{origin.address}"]}}}}
routes:
  - {{name: orders, match: {{path_prefix: /orders}}, upstream: shop}}
  - {{name: catalog, match: {{path_prefix: /status}}, upstream: shop}}
""") as gw:
        stop = threading.Event()

        def traffic() -> None:
            i = 0
            while not stop.is_set():
                get(gw.port, f"/orders/{i}")
                if i % 3 == 0:
                    get(gw.port, "/status/500")
                i += 1
                stop.wait(0.02)

        t = threading.Thread(target=traffic, daemon=True)
        t.start()
        try:
            # The series need a baseline sample and one step of deltas before rates exist.
            wait_until(lambda: all(
                (gw.admin("GET", "/api/series").json()["routes"].get(name) or {}).get(
                    "rps", [None])[-1] for name in ("orders", "catalog")),
                timeout=10, every=0.25, what="non-zero rates in /api/series")
            yield gw, origin
        finally:
            stop.set()
            t.join()


def figure(dom: str, key: str) -> str:
    m = re.search(r'<b class="v" data-k="' + re.escape(key) + r'">([^<]*)</b>', dom)
    assert m, f"no figure {key} in the rendered page"
    return html.unescape(m.group(1))


def test_dashboard_shows_routes_with_live_non_zero_figures(
        busy_gateway: tuple[AdminGateway, Origin]) -> None:
    gw, origin = busy_gateway
    dom = chromium("--dump-dom", f"http://127.0.0.1:{gw.admin_port}/")
    assert re.search(r'id="status"[^>]*>live ·', dom), "the page never reached the API"
    for route in ("orders", "catalog"):
        assert f'<tr data-name="{route}">' in dom
        assert float(figure(dom, f"routes:{route}:rps")) > 0
    assert float(figure(dom, "routes:orders:err")) == 0
    assert float(figure(dom, "routes:catalog:err")) == 100  # every /status/500 fails
    p50, p99 = figure(dom, "routes:orders:p99").split(" / ")
    assert 0 < float(p50) <= float(p99)
    assert float(figure(dom, "upstreams:shop:rps")) > 0
    assert f'data-endpoint="{origin.address}"' in dom and ">applied<" in dom
    # No health checks on shop: its endpoint is judged from the attempts sent to it, a
    # quarter of which (the /status/500 ones) fail: amber, with the share.
    pill = re.search(r'data-health="' + re.escape(origin.address)
                     + r'"><span class="pill (\w+)">(\d+)% errors<', dom)
    assert pill is not None and pill.group(1) == "warn", dom[dom.find("data-health"):][:300]
    assert 15 <= int(pill.group(2)) <= 35


def test_dashboard_screenshot_is_written(busy_gateway: tuple[AdminGateway, Origin]) -> None:
    gw, _ = busy_gateway
    SCREENSHOT.unlink(missing_ok=True)
    chromium(f"--screenshot={SCREENSHOT}", "--window-size=1280,1000",
             f"http://127.0.0.1:{gw.admin_port}/")
    data = SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_dashboard_shows_upstream_latency(busy_gateway: tuple[AdminGateway, Origin]) -> None:
    gw, _ = busy_gateway
    line = gw.admin("GET", "/api/series").json()["upstreams"]["shop"]
    assert [x for x in line["p50"] if x is not None], line
