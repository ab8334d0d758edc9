"""The dashboard page, rendered by a real headless Chromium against a live admin server."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from adminkit import MemoryBackend  # noqa: E402

from edgeward.admin.server import AdminServer  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="/usr/bin/chromium is absent (the test command apt-installs it)")
async def test_dashboard_renders_live_figures(backend: MemoryBackend) -> None:
    srv = AdminServer(backend, token=None, series_step=0.2, series_horizon=30)
    await srv.start("127.0.0.1", 0)
    backend.endpoints["orders"][1].ejected = True
    await backend.apply_config("routes: [{name: x, upstream: nowhere}]")  # refused
    backend.canaries = [{
        "route": "orders_api", "stable": "orders", "canary": "orders-v2", "phase": "rolled_back",
        "weight": 0, "history": [
            {"time": 1.7e9, "decision": "start", "weight_before": 0, "weight": 10,
             "reason": "started"},
            {"time": 1.7e9 + 60, "decision": "advance", "weight_before": 10, "weight": 20,
             "reason": "passed"},
            {"time": 1.7e9 + 70, "decision": "rollback", "weight_before": 20, "weight": 0,
             "reason": "error rate up 4.00 points"}]}]
    async def play() -> None:  # ~150 req/s on orders_api, 10 % errors, 40 ms each
        tick = 0
        while True:
            backend.traffic("orders_api", "orders", 15, errors=1 + tick % 2, seconds=0.04)
            # No health checks on orders: 8001 fails every attempt, 8002 none.
            backend.attempt("orders", "127.0.0.1:8001", 4, errors=4)
            backend.attempt("orders", "127.0.0.1:8002", 4)
            tick += 1
            await asyncio.sleep(0.1)

    player = asyncio.get_running_loop().create_task(play())
    try:
        await asyncio.sleep(1.0)  # a few samples before the page loads
        with tempfile.TemporaryDirectory() as profile:
            proc = await asyncio.create_subprocess_exec(
                str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
                "--virtual-time-budget=8000", "--dump-dom", f"http://127.0.0.1:{srv.port}/",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), 60)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        dom = out.decode()
    finally:
        player.cancel()
        await asyncio.gather(player, return_exceptions=True)
        await srv.close()

    assert 'data-name="orders_api"' in dom and 'data-name="users_api"' in dom
    rate = re.search(r'data-k="routes:orders_api:rps">([0-9.]+)<', dom)
    assert rate is not None and float(rate.group(1)) > 10, dom[:2000]
    err = re.search(r'data-k="routes:orders_api:err">([0-9.]+)<', dom)
    assert err is not None and 5 <= float(err.group(1)) <= 15  # 10 % errors played
    assert 'data-k="upstreams:orders:rps"' in dom
    assert re.search(r'data-endpoint="127.0.0.1:8002">.*?ejected.*?open', dom)
    assert ">refused<" in dom and ">applied<" in dom
    canary = re.search(r'data-canary="orders_api">.*?</tr>', dom)
    assert canary is not None and ">rolled_back<" in canary.group(0)
    assert 'data-k="canary:orders_api:weight">0<' in canary.group(0)
    assert "error rate up 4.00 points" in canary.group(0)
    assert re.search(r'<span id="status"[^>]*>live · 0.2s steps', dom)

    # An endpoint without health checks that fails every attempt shows as failing (red);
    # one that answers shows as answering; one without traffic says it is not checked.
    health = dict(re.findall(r'data-health="([^"]+)"><span class="pill ([a-z ]*)"', dom))
    assert health == {"127.0.0.1:8001": "bad", "127.0.0.1:8002": "ok", "127.0.0.1:8003": ""}
    assert re.search(r'data-health="127.0.0.1:8001"><span[^>]*>failing · 100% errors<', dom)
    assert re.search(r'data-health="127.0.0.1:8003"><span[^>]*>not checked<', dom)
    assert re.search(r'data-k="endpoints:orders/127.0.0.1:8001:err">100<', dom)

    # A fresh gateway (a few seconds of a 30 s window): the lines span the slots that have
    # data, not a sliver at the right of an empty window; no data yet says so.
    lines = _sparks(dom)
    rps = lines["routes:orders_api:rps"]
    assert 12 <= rps.points < 150, rps  # 150 slots in the window
    assert rps.xs[0] < 0.25 * 180 and rps.xs[-1] > 0.9 * 180, rps  # spread over the width
    assert lines["routes:users_api:err"].points == 0  # users_api had no request at all
    assert re.search(r'data-k="routes:users_api:err">–<.*?collecting…', dom)


class _Spark:
    def __init__(self, points: int, d: str) -> None:
        self.points = points
        coords = [float(v) for v in re.findall(r"-?[0-9.]+", d)]
        self.xs, self.ys = coords[0::2], coords[1::2]

    def __repr__(self) -> str:
        return f"<spark {self.points} points x {self.xs[:1]}..{self.xs[-1:]}>"


def _sparks(dom: str) -> dict[str, _Spark]:
    """Each figure's sparkline: its shown slot count and the first path's coordinates."""
    found = {}
    for key, svg in re.findall(r'data-k="([^"]+)">.*?(<svg.*?</svg>)', dom):
        points = re.search(r'data-points="(\d+)"', svg)
        path = re.search(r'<path d="([^"]*)"', svg)
        found[key] = _Spark(int(points.group(1)) if points else -1, path.group(1) if path else "")
    return found
